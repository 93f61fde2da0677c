"""The ``opset`` pass: convert a model's default domain to another opset, down or up.

Rules by kind: ``io`` (values that moved between inputs and attributes), ``forms`` (attribute
forms and meanings, Constant/ConstantOfShape, defaults a newer version added), ``decompose``
(ops newer than the target written as older ops; ``attention`` for Attention), ``types``
(element types an older version lacks, through Casts), ``up`` (the reverse moves, where onnx's
converter gives up). ``versions`` reads the schemas, ``convert`` is the pass, ``lowest`` finds
the lowest opset a model converts to (``onnxopt check``).
"""

from .convert import Opset, convert, parse_target, source_opset
from .lowest import lowest_opset

__all__ = ["Opset", "convert", "lowest_opset", "parse_target", "source_opset"]
