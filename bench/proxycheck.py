"""Is the proxy the bottleneck? `python -m bench.proxycheck [--modules=bench.proxy] [--server=rgw]`.

Hammers one presigned 1-byte GET (bench.ceiling's client: keep-alive http.client,
no SDK) straight at the server and through bench.proxy, with and without the
latency delay, at several concurrencies, and prints requests/s next to the
proxy's and the server's CPU (% of one core) for each. With a delay of D
seconds and C concurrent requests, C / D requests/s is the most any client can
get; a proxy that is the limit shows far fewer at ~100% CPU (one Python
process: one core at most). Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .servers import REPO, Proxy, Server, start_server


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hammer(url: str, seconds: float, concurrency: int, procs: int) -> int:
    """`procs` processes of bench.ceiling, `concurrency` threads in all: requests answered."""
    per = max(1, concurrency // procs)
    ps = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.ceiling", url, str(seconds), str(per)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
        )
        for _ in range(procs)
    ]
    return sum(int(p.communicate()[0].strip() or 0) for p in ps)


def measure(
    server: Server,
    presign: Callable[[str], str],
    proxied: bool,
    delay: float,
    concurrency: int,
    seconds: float,
    procs: int,
    module: str,
) -> dict[str, Any]:
    proxy = Proxy(server, delay, module=module) if proxied else None
    url = presign(proxy.url if proxy else server.endpoint)
    s0 = server.cpu_seconds()
    p0 = _cpu(proxy.proc.pid) if proxy else 0.0
    t0 = time.monotonic()
    n = hammer(url, seconds, concurrency, procs)
    wall = time.monotonic() - t0
    row: dict[str, Any] = {
        "route": f"{module} +{delay * 1000:.0f} ms" if proxy else "direct",
        "concurrency": concurrency,
        "requests_per_s": round(n / seconds, 1),
        "limit_per_s": round(concurrency / delay, 1) if proxy and delay else None,
        "proxy_cpu_pct": round(100 * (_cpu(proxy.proc.pid) - p0) / wall, 1) if proxy else None,
        "server_cpu_pct": round(100 * (server.cpu_seconds() - s0) / wall, 1),
    }
    if proxy:
        # The counts must match what the clients were answered (a cheap proxy must still count right).
        row["proxy_counted"] = proxy.counts()
        row["answered"] = n
        proxy.stop()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="rgw", choices=("rgw", "moto"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--delay-ms", type=float, default=30.0)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--procs", type=int, default=2, help="client processes (so the client's GIL is not the limit)")
    ap.add_argument("--modules", default="bench.proxy", help="comma list of proxy modules to compare")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, order rotated each round (machine drift)")
    a = ap.parse_args(argv)
    server = start_server(a.server, name=f"{a.server}-proxycheck")
    rows: list[dict[str, Any]] = []
    try:
        c = server.client()
        bucket = f"bench-proxycheck-{int(time.time())}"
        c.create_bucket(Bucket=bucket)
        c.put_object(Bucket=bucket, Key="x", Body=b"x")

        def presign(endpoint: str) -> str:
            return str(
                server.client(endpoint=endpoint).generate_presigned_url(
                    "get_object", Params={"Bucket": bucket, "Key": "x"}, ExpiresIn=3600
                )
            )

        routes: list[tuple[bool, float, str]] = [(False, 0.0, "")]
        for module in a.modules.split(","):
            routes += [(True, 0.0, module), (True, a.delay_ms / 1000, module)]
        for conc in [int(x) for x in a.concurrency.split(",")]:
            procs = min(a.procs, conc)
            for r in range(a.repeat):
                k = r % len(routes)
                for proxied, delay, module in routes[k:] + routes[:k]:
                    row = measure(server, presign, proxied, delay, conc, a.seconds, procs, module or "bench.proxy")
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        server.stop()
    print(summary(rows))
    return 0


def summary(rows: list[dict[str, Any]]) -> str:
    """Medians per (route, concurrency): a markdown table."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["route"], row["concurrency"]), []).append(row)
    out = [
        "| route | concurrency | requests/s | limit/s | ms/request | proxy CPU % | proxy CPU ms/request "
        "| server CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (route, conc), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rps = statistics.median(x["requests_per_s"] for x in rs)
        pcpu = [x["proxy_cpu_pct"] for x in rs if x["proxy_cpu_pct"] is not None]
        per = [10 * x["proxy_cpu_pct"] / x["requests_per_s"] for x in rs if x["proxy_cpu_pct"] and x["requests_per_s"]]
        limit = rs[0]["limit_per_s"]
        cpu = f"{statistics.median(pcpu):.0f} | {statistics.median(per):.2f}" if pcpu else "– | –"
        out.append(
            f"| {route} | {conc} | {rps:.0f} | {limit or '–'} | {1000 * conc / rps:.1f} | {cpu} | "
            f"{statistics.median(x['server_cpu_pct'] for x in rs):.0f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
