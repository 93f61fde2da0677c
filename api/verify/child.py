"""The original's run in a forked child process, beside the passes.

Preparing the original is mostly onnxruntime, which releases the interpreter while it builds a
session and runs it; but building onnxruntime's model, reading the graph's hints and generating
inputs hold it. In a thread beside the passes that slowed them by ~15 % at 50,000 nodes (4.8 s
alone, 5.7 s beside the thread, 4.9 s beside a forked child). A child also cannot take the
parent down if onnxruntime crashes on a hostile original: the parent then prepares in-process,
as it would have without a child.

Forking is only safe where nothing else runs: Linux, and a process with one Python thread (a
thread holding a lock at the fork would leave it held forever in the child). The CLI is such a
process; a library caller keeps the thread. Native threads cannot be ruled out (numpy's BLAS
and onnxruntime each start one at import), so the parent watches the child: one that uses no
processor time for :data:`STALL_SECONDS` is taken as deadlocked, killed, and its work redone
in-process: a stuck child costs time, never a hang.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import threading

STALL_SECONDS = 10.0


def can_fork() -> bool:
    """True where :class:`ChildRun` is safe: Linux, and this process runs one thread."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") \
        and threading.active_count() == 1


class ChildRun:
    """``verifier.prepare()`` in a forked child; :meth:`collect` adopts what it made."""

    def __init__(self, verifier):
        self.verifier = verifier
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _serve(verifier, write)  # never returns
        os.close(write)
        self.pid, self.fd = pid, read

    def collect(self) -> bool:
        """Wait for the child and adopt its prepared original; False when it failed, died or
        stalled (preparing in-process then raises its error again, or does the work it could
        not)."""
        try:
            data = _read_while_alive(self.fd, self.pid)
        finally:
            os.close(self.fd)
            _, status = os.waitpid(self.pid, 0)
        if data is None or status != 0 or not data:
            return False
        try:
            prep = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a torn message is a dead child
            return False
        self.verifier.adopt(prep)
        return True


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


def _serve(verifier, fd: int) -> None:
    """The child: prepare, send the result, exit without running the parent's exit hooks or
    flushing its buffers (exit status 1 on any failure)."""
    status = 1
    try:
        data = pickle.dumps(verifier.prepare(), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        status = 0
    except BaseException:  # noqa: BLE001 - reported by the exit status; the parent redoes it
        pass
    finally:
        os._exit(status)


__all__ = ["ChildRun", "can_fork"]
