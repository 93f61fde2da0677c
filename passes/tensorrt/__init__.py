"""TensorRT: rewrites for TensorRT 10's ONNX parser, and the readiness check behind
``onnxopt check --target tensorrt``.

Naming: the pass is ``trt`` (module :mod:`.trt`; ``tensorrt`` is the preset that runs it with
folding, cleanup and shape inference, and a bare preset name in a pipeline expands to the preset).
Its rules run together, or one at a time as ``trt.RULE`` (``trt{only=RULE}``); ``--list-passes``
prints them. Every rule replaces a construct the parser refuses with one it accepts that ONNX
defines to compute exactly the same values, and cites the support-matrix fact it answers:

- :mod:`.resize`: Resize coordinate modes, aspect-ratio policy, antialias and axes forms;
- :mod:`.pool`: 1-D MaxPool/AveragePool as 2-D pools;
- :mod:`.dtypes`: NonZero, Equal, Clip, Pad on types TensorRT lacks for them; double round trips;
- :mod:`.outputs`: unread extra outputs TensorRT refuses (MaxPool Indices, LayerNorm statistics).

The support matrix itself is data, ``passes/tensorrt_matrix.json`` (TensorRT 10.15, with the URL
of every fact), read by :mod:`.matrix` and evaluated by :mod:`.support`, which also asks these
rules (and ``fold``/``identity``) whether they can fix each finding.
"""

from .trt import ALL_RULES, RULES, RULES_BY_NAME, TRT

__all__ = ["TRT", "RULES", "ALL_RULES", "RULES_BY_NAME"]
