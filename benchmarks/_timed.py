"""Run a command; write its wall time, CPU time and peak RSS as JSON.

    python -S _timed.py RESULT.json TIMEOUT CMD...

Why a wrapper: on Linux a child's ru_maxrss starts at its parent's RSS when it was forked (exec keeps
the old high-water mark), so measuring straight from run.py, which may have grown to hundreds of MB,
would report run.py's size for every small tool. This process is tiny (run with -S, stdlib only), so
the RSS it hands down is a few MB. After TIMEOUT seconds it kills the command and still reports what
it used ("timed_out": true). stdin/stdout/stderr are inherited; the exit code is the child's.

``peak_rss_mb`` is the kernel's high-water mark of one process (the command, or the largest of the
children it reaped), so it misses memory that a command's forked child holds at the same time.
``peak_tree_mb`` adds that: the largest sum, over the command and its descendants, of their
proportional set sizes (``Pss``, shared pages split between the processes that share them, so a
forked child's copy-on-write pages count once), sampled every 0.2 s while it has a child (a
spike shorter than that can be missed). ``peak_mb`` is the larger of the two: what to report.
"""

import json
import os
import signal
import sys
import threading
import time

SAMPLE_SECONDS = 0.2  # reading Pss takes the process's memory lock: sampled often, it slows it


def _children(pid: int) -> list:
    """Pids of the processes ``pid``'s threads forked."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree_pss_kb(root: int) -> int:
    """Pss of ``root`` and its descendants, summed (KiB); 0 while it has no child, when the
    kernel's high-water mark of the one process already says it all (and reading Pss, which
    walks the page tables, would only cost the measured command a core's time)."""
    kids = _children(root)
    if not kids:
        return 0
    total, stack = _pss_kb(root), kids
    while stack:
        pid = stack.pop()
        total += _pss_kb(pid)
        stack.extend(_children(pid))
    return total


def _sample(pid: int, peak: list, done: threading.Event) -> None:
    while not done.wait(SAMPLE_SECONDS):
        peak[0] = max(peak[0], _tree_pss_kb(pid))


def main() -> int:
    result, timeout, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    load = os.getloadavg()[0]  # other work on the machine inflates wall times; CPU time much less
    t0 = time.perf_counter()
    try:
        pid = os.posix_spawnp(cmd[0], cmd, os.environ)
    except OSError as e:
        print(f"{cmd[0]}: {e.strerror}", file=sys.stderr)
        return 127
    timed_out = []

    def expire(signum, frame) -> None:
        timed_out.append(True)
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    peak, done = [0], threading.Event()
    sampler = threading.Thread(target=_sample, args=(pid, peak, done), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(pid, 0)
    done.set()
    sampler.join()
    signal.setitimer(signal.ITIMER_REAL, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as f:
        json.dump({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                   "peak_tree_mb": peak[0] / 1024,
                   "peak_mb": max(usage.ru_maxrss, peak[0]) / 1024,
                   "exit_code": code, "timed_out": bool(timed_out), "load_before": load}, f)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
