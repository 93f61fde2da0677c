"""Exception types of onnxopt: :mod:`onnxopt.ir.errors`, under the name users import.

They live in the IR layer, the lowest one that raises them, so that ``ir/`` imports nothing of the
layers above it; passes, the API and the CLI import them from there too.
"""

from .ir.errors import *  # noqa: F401,F403  (the public names, re-exported)
from .ir.errors import __all__  # noqa: F401
