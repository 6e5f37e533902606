"""Run one command and report its wall time, CPU and peak RSS: `python -I -S spawn.py OUT TIMEOUT CMD...`.

Why a separate, tiny process: on Linux a child's peak RSS (wait4's ru_maxrss)
starts at the RSS of the process that forked it — exec keeps the larger of the
old and the new high-water mark. Spawned straight from the bench (a Python
process holding boto3, the history, ...), every tool showed the bench's own
~60-90 MiB as its floor. Forked from this script (stdlib only, no site: ~5 MiB),
a tool's peak RSS is its own. ru_maxrss covers the command and every
descendant it waited for (the largest one, not the sum).

Writes one JSON line to OUT: rc, seconds, cpu_s (user + system, descendants
included) and maxrss_kib. The command inherits this process's cwd, environment
and standard streams. After TIMEOUT seconds it is killed (rc -9).
"""

import json
import os
import signal
import sys
import time


def main() -> int:
    out, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)

    def on_timeout(_sig: int, _frame: object) -> None:
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    while True:
        try:
            _pid, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    seconds = time.monotonic() - t0
    signal.setitimer(signal.ITIMER_REAL, 0)
    result = {
        "rc": os.waitstatus_to_exitcode(status),
        "seconds": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
    }
    with open(out, "w") as f:
        f.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
