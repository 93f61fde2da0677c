"""``dynamize``: repair a traced fixed-shape export so that chosen input dims become dynamic.

    onnxopt fixed.onnx -p dynamize --dynamic input_ids:0=batch,1=seq -o dynamic.onnx

The freed dims become symbols; symbolic shape inference shows where they meet a size the
exporter baked in; each such constant is rewritten into a computation from the inputs' runtime
shapes (or regenerated from its structure), proved at the trace size and by the shapes flowing
through the graph. What cannot be freed is reported and nothing is written. See
:mod:`.repair` for the algorithm.
"""

from .repair import DynamizeError, DynamizePass, Dynamizer
from .spec import DynamizeUsageError, Freed, parse_spec, resolve

__all__ = [
           "DynamizeError",
           "DynamizePass",
           "DynamizeUsageError",
           "Dynamizer",
           "Freed",
           "parse_spec",
           "resolve",
]
