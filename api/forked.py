"""Work done in a forked child beside the parent, its result sent back pickled.

The CLI uses it twice: the loader audits a big model while it lifts it (:mod:`.io`), and the
verifier runs the original while the passes run (:mod:`.verify.child`). A child costs a fork
(milliseconds) and gains a processor: worth it only for work of a tenth of a second or more.

Forking is only safe where nothing else runs: Linux, and a process with one Python thread (a
thread holding a lock at the fork would leave it held forever in the child). The CLI is such a
process; a library caller keeps its work in-process. Native threads cannot be ruled out (numpy's
BLAS and onnxruntime each start one at import), so the parent watches the child: one that uses no
processor time for :data:`STALL_SECONDS` is taken as deadlocked and killed. A child that fails,
dies or stalls reports no result, and the caller does the work in-process, as it would have
without a child: a bad child costs time, never the answer or a hang.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import threading
from typing import Any, Callable

STALL_SECONDS = 10.0


def can_fork() -> bool:
    """True where :class:`Forked` is safe: Linux, and this process runs one thread."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") \
        and threading.active_count() == 1


class Forked:
    """``work()`` in a forked child; :meth:`collect` returns what it returned."""

    def __init__(self, work: Callable[[], Any]):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _serve(work, write)  # never returns
        os.close(write)
        self.pid, self.fd = pid, read

    def collect(self) -> tuple[bool, Any]:
        """Wait for the child: (True, what ``work`` returned), or (False, None) when it failed,
        died or stalled."""
        try:
            data = _read_while_alive(self.fd, self.pid)
        finally:
            os.close(self.fd)
            _, status = os.waitpid(self.pid, 0)
        if data is None or status != 0 or not data:
            return False, None
        try:
            return True, pickle.loads(data)
        except Exception:  # noqa: BLE001 - a torn message is a dead child
            return False, None

    def abandon(self) -> None:
        """Kill the child and reap it (its result is not wanted: the parent is failing)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        os.close(self.fd)
        os.waitpid(self.pid, 0)


def _read_while_alive(fd: int, pid: int):
    """All the child writes to ``fd``; None (the child killed) when it stops using the
    processor for :data:`STALL_SECONDS` before it is done."""
    chunks, poller = [], select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    ticks, idle = _cpu_ticks(pid), 0.0
    while True:
        if poller.poll(1000):
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            idle = 0.0
            continue
        now = _cpu_ticks(pid)
        idle = idle + 1.0 if now == ticks else 0.0
        ticks = now
        if idle >= STALL_SECONDS:
            os.kill(pid, signal.SIGKILL)
            return None


def _cpu_ticks(pid: int) -> int:
    """User plus system clock ticks of ``pid`` and its threads (-1 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)


def _serve(work: Callable[[], Any], fd: int) -> None:
    """The child: do the work, send the result, exit without running the parent's exit hooks
    or flushing its buffers (exit status 1 on any failure)."""
    status = 1
    try:
        data = pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        status = 0
    except BaseException:  # noqa: BLE001 - reported by the exit status; the parent redoes it
        pass
    finally:
        os._exit(status)


__all__ = ["Forked", "STALL_SECONDS", "can_fork"]
