"""The S3 servers the bench measures against, each on 127.0.0.1 in processes of its own.

- moto: `python -m moto.server` in a separate process, so its CPU is not mixed
  with the client's (a ThreadedMotoServer would live in the bench's process).
- rgw: a real Ceph RADOS Gateway through the project's own launcher
  (tests/support/rgw.py): 1 mon + 1 memstore OSD + radosgw.

`Server.cpu_seconds()` sums user+system CPU of every server process, which is
how "server busy %" is measured: CPU seconds spent by the server / wall seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Where moto's log goes: the run's --out dir (set by bench.__main__).
LOG_DIR = REPO / "bench" / "out"
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers; the status does not matter
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (from /proc: no dependency)."""
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # Fields after the ")" that closes the command name: utime and stime are the 12th and 13th.
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


@dataclass
class Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    pids: list[int] = field(default_factory=list)
    _handle: Any = None

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of every server process so far (from /proc: no dependency)."""
        return cpu_seconds(self.pids)

    def client(self, endpoint: str | None = None, max_pool: int = 32) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=max_pool,
                retries={"mode": "standard", "max_attempts": 8},
            ),
        )

    def collect_garbage(self) -> None:
        """RGW: free deleted objects' data now (its GC otherwise waits hours; the OSD is in RAM)."""
        conf = getattr(self._handle, "conf", None)
        if conf is None:
            return
        subprocess.run(
            ["radosgw-admin", "-c", str(conf), "gc", "process", "--include-all"],
            capture_output=True,
            timeout=300,
            check=False,
        )

    def stop(self) -> None:
        h = self._handle
        if h is None:
            return
        if isinstance(h, subprocess.Popen):
            h.terminate()
            try:
                h.wait(timeout=10)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()
        else:
            h.stop()
        self._handle = None


def start_moto(name: str = "moto") -> Server:
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the server
    p = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(endpoint + "/moto-api/", 60)
    except BaseException:
        p.kill()
        raise
    return Server(name, endpoint, "testing", "testing", [p.pid], p)


def start_rgw(name: str = "rgw") -> Server:
    sys.path.insert(0, str(REPO))
    from tests.support.rgw import RgwServer, install_allowed

    rgw = RgwServer(ssl=False)
    rgw.start(allow_apt=install_allowed())
    pids = [p.pid for _n, p in rgw.procs]
    return Server(name, rgw.endpoint, rgw.access_key, rgw.secret_key, pids, rgw)


def start_server(kind: str, name: str | None = None) -> Server:
    return start_moto(name or kind) if kind == "moto" else start_rgw(name or kind)


class Proxy:
    """bench.proxy in its own process: counts requests by operation, optionally adds a delay."""

    def __init__(self, server: Server, delay: float = 0.0, module: str = "bench.proxy") -> None:
        self.server = server
        self.delay = delay
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--upstream", server.endpoint, "--delay", str(delay)],
            stdout=subprocess.PIPE,
            cwd=REPO,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "PORT":
            self.proc.kill()
            raise RuntimeError(f"bench.proxy did not start (said {line!r})")
        self.url = f"http://127.0.0.1:{line[1]}"

    def cpu_seconds(self) -> float:
        return cpu_seconds([self.proc.pid])

    def _control(self, method: str) -> dict[str, int]:
        req = urllib.request.Request(self.url + "/__bench__/counts", method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def counts(self) -> dict[str, int]:
        return self._control("GET")

    def reset(self) -> dict[str, int]:
        return self._control("POST")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
