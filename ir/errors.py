"""Exception types of onnxopt.

Every error a user can cause has its own type, so the CLI can map it to an exit code and a
one-line message and the API can be caught precisely. All derive from :class:`OnnxoptError`.
"""

from __future__ import annotations


class OnnxoptError(Exception):
    """Base of every error onnxopt raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = 2


class ModelLoadError(OnnxoptError):
    """The file is not a readable ONNX model (not protobuf, truncated, empty, wrong message)."""


class InvalidModelError(OnnxoptError):
    """The model parses but is malformed: dangling inputs, two producers of a name, a cycle..."""


class ExternalDataError(InvalidModelError):
    """An external data reference is missing, absolute, escapes the model folder or is short."""


class UsageError(OnnxoptError):
    """The command line or API call is wrong (unknown pass, bad option value)."""


class PassError(OnnxoptError):
    """A pass raised or broke an IR invariant; the message names the pass."""


class PassCrash(PassError):
    """A built-in pass raised an unexpected exception: a bug in onnxopt, not in the input (the
    CLI exits 3 and asks for a report)."""

    exit_code = 3


class IRError(OnnxoptError):
    """A mutation would break an IR invariant (erasing a used node, a cross-graph edge...)."""


class ShapeError(InvalidModelError):
    """Shapes in the model contradict each other; the message names the nodes."""


class VerificationError(OnnxoptError):
    """The optimized model does not compute what the original computes."""

    exit_code = 1


class NotVerifiedError(VerificationError):
    """Verification could not run and the caller required it (``require_verified``); the
    message says why (the original does not load in onnxruntime, inputs too big to generate...)."""


__all__ = [
    "OnnxoptError",
    "ModelLoadError",
    "InvalidModelError",
    "ExternalDataError",
    "UsageError",
    "PassError",
    "PassCrash",
    "IRError",
    "ShapeError",
    "VerificationError",
    "NotVerifiedError",
]
