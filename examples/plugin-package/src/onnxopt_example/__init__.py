"""An example onnxopt plugin package.

- ``example:drop-mul-one`` (:mod:`onnxopt_example.passes`): a pass written by hand over a graph.
- ``example:fuse`` (:mod:`onnxopt_example.rules`): a pass built from rewrite rules with the
  pattern API; its one rule, ``gap_flatten``, runs alone as ``example:fuse.gap_flatten``.

onnxopt finds both through the ``onnxopt.passes`` entry points in ``pyproject.toml``; nothing
here needs to be imported by hand.
"""

__all__: list[str] = []
