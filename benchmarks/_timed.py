"""Run a command; write its wall time, CPU time and peak RSS as JSON.

    python -S _timed.py RESULT.json TIMEOUT CMD...

Why a wrapper: on Linux a child's ru_maxrss starts at its parent's RSS when it was forked (exec keeps
the old high-water mark), so measuring straight from run.py, which may have grown to hundreds of MB,
would report run.py's size for every small tool. This process is tiny (run with -S, stdlib only), so
the RSS it hands down is a few MB. After TIMEOUT seconds it kills the command and still reports what
it used ("timed_out": true). stdin/stdout/stderr are inherited; the exit code is the child's.
"""

import json
import os
import signal
import sys
import time


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
    _, status, usage = os.wait4(pid, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as f:
        json.dump({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                   "exit_code": code, "timed_out": bool(timed_out), "load_before": load}, f)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
