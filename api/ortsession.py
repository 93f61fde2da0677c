"""onnxruntime sessions, built one way for every caller (the verifier, cut's composition check,
the deployment runtimes, the test helpers).

onnxruntime is imported on first use. Its own log is silenced: every load or run failure comes
back as an exception, which onnxopt turns into a one-line reason; the runtime's coloured log
would repeat it on stderr, even when onnxopt succeeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

CPU = "CPUExecutionProvider"


def session(ref: Any, *, optimize: bool = False, threads: Optional[int] = None,
            providers: Sequence[str] = (CPU,), data_dir: Optional[str] = None,
            prepack: bool = True, spin: bool = True):
    """An ``onnxruntime.InferenceSession`` on a path or serialized model.

    ``optimize``: the runtime's graph optimizations (all of them) on; off by default, so its
    fusions cannot hide a broken graph. ``threads``: intra-op threads (0: all cores), one
    inter-op thread; None leaves the runtime's defaults. ``data_dir``: where the external data
    of a serialized model lives. ``prepack``: False keeps the runtime from holding a second,
    re-laid-out copy of each weight (a verification session runs a few times; memory matters
    more than speed there). ``spin``: False puts the runtime's idle pool threads to sleep at
    once instead of spinning for more work; a check that runs beside the passes (the verifier's
    child) would otherwise take the processor they run on."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else
                                   ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 4
    ort.set_default_logger_severity(3)  # the process-wide logger, used outside sessions
    if data_dir is not None:
        so.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                    data_dir)
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if not prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(ref, so, providers=list(providers))


def run_options():
    """``onnxruntime.RunOptions`` with the runtime's log silenced: a run's failure comes back as
    an exception, and its error log would repeat it for every probed binding."""
    import onnxruntime as ort

    ro = ort.RunOptions()
    ro.log_severity_level = 4
    return ro


__all__ = ["CPU", "run_options", "session"]
