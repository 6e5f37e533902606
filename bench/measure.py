"""Run one tool invocation as a subprocess and measure it.

Wall time, the client's CPU and peak RSS (from wait4's rusage, which includes
every descendant the client waited for: `inv` -> python, aws -> python; taken
by bench/spawn.py, a tiny process of its own, so the bench's RSS does not leak
into the figure), and the server's CPU over the same interval (server busy % =
server CPU s / wall s, in % of one core).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .servers import Proxy, Server

SPAWN = Path(__file__).with_name("spawn.py")


@dataclass
class Measurement:
    argv: list[str]
    rc: int
    seconds: float
    client_cpu_s: float
    client_user_s: float
    client_sys_s: float
    peak_rss_mib: float
    server_cpu_s: float
    server_busy_pct: float
    proxy_busy_pct: float | None  # the proxies this run went through (% of one core), None when direct
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
    proxies: Sequence[Proxy] = (),
) -> Measurement:
    scratch.mkdir(parents=True, exist_ok=True)
    out_path, err_path, usage_path = scratch / "stdout.txt", scratch / "stderr.txt", scratch / "rusage.json"
    usage_path.unlink(missing_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        cpu0 = sum(s.cpu_seconds() for s in servers)
        pcpu0 = sum(p.cpu_seconds() for p in proxies)
        t0 = time.monotonic()
        # Through bench/spawn.py (see there): forked from the bench itself, a tool's peak RSS
        # would start at the bench's own RSS. It also times the tool and kills it at `timeout`.
        p = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SPAWN), str(usage_path), str(timeout), *argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        p.wait()
        wall = time.monotonic() - t0
        cpu1 = sum(s.cpu_seconds() for s in servers)
        pcpu1 = sum(p.cpu_seconds() for p in proxies)
    try:
        usage = json.loads(usage_path.read_text())
    except (OSError, ValueError):
        usage = {"rc": p.returncode or 1, "seconds": wall, "cpu_s": 0.0, "maxrss_kib": 0}
    usage.setdefault("user_s", 0.0)
    usage.setdefault("sys_s", 0.0)
    seconds = usage["seconds"]
    server_cpu = cpu1 - cpu0
    return Measurement(
        argv=argv,
        rc=usage["rc"],
        seconds=round(seconds, 3),
        client_cpu_s=round(usage["cpu_s"], 3),
        client_user_s=round(usage["user_s"], 3),
        client_sys_s=round(usage["sys_s"], 3),
        peak_rss_mib=round(usage["maxrss_kib"] / 1024, 1),
        server_cpu_s=round(server_cpu, 3),
        server_busy_pct=round(100 * server_cpu / seconds, 1) if seconds else 0.0,
        proxy_busy_pct=round(100 * (pcpu1 - pcpu0) / seconds, 1) if proxies and seconds else None,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )
