"""Run one tool invocation as a subprocess and measure it.

Wall time, the client's CPU and peak RSS (from wait4's rusage, which includes
every descendant the client waited for: `inv` -> python, aws -> python), and
the server's CPU over the same interval (server busy % = server CPU s / wall s,
in % of one core).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .servers import Server


@dataclass
class Measurement:
    argv: list[str]
    rc: int
    seconds: float
    client_cpu_s: float
    peak_rss_mib: float
    server_cpu_s: float
    server_busy_pct: float
    stdout: str
    stderr: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stdout"] = self.stdout[-2000:]
        d["stderr"] = self.stderr[-2000:]
        return d


def run(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    servers: list[Server],
    timeout: float = 1800,
    scratch: Path,
) -> Measurement:
    scratch.mkdir(parents=True, exist_ok=True)
    out_path, err_path = scratch / "stdout.txt", scratch / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        cpu0 = sum(s.cpu_seconds() for s in servers)
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = t0 + timeout
        while True:
            # wait4 (not Popen.wait) to get the child's rusage; poll so a hung peer cannot hang the bench.
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        cpu1 = sum(s.cpu_seconds() for s in servers)
    p.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = cpu1 - cpu0
    return Measurement(
        argv=argv,
        rc=p.returncode,
        seconds=round(seconds, 3),
        client_cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        peak_rss_mib=round(usage.ru_maxrss / 1024, 1),
        server_cpu_s=round(server_cpu, 3),
        server_busy_pct=round(100 * server_cpu / seconds, 1) if seconds else 0.0,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )
