"""Run a scenario: every contender, round after round, alternating the order so drift cancels out.

Rounds: with `runs` > 1, round 0 goes through the counting proxy (requests per
object by operation, as the server sees them; its time is not used) and rounds
1..runs go straight to the server and are timed. With `runs` == 1 (the smoke)
the single round is both, and the report says so. In latency mode every round
goes through the slowing proxy, which counts too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from . import measure, tools
from .scenarios import FLOOR, OURS, Scenario
from .servers import Proxy, Server


def _tail(text: str, n: int = 400) -> str:
    return text.strip()[-n:]


def run_scenario(
    sc: Scenario,
    runs: int,
    *,
    delay: float = 0.0,
    log: Callable[[str], None] = print,
    tag: str = "",
    proxies: dict[str, Proxy] | None = None,
    counted: bool = True,
) -> dict[str, Any]:
    """`proxies`: long-lived proxies to use instead of new ones (backup: its state is bound to the URL).

    `counted=False` (time against N): no counting round, every round straight to the server.
    """
    always = delay > 0
    tag = tag or ("latency-" if delay else "")
    count_round = counted or always
    extra = 1 if (count_round and runs > 1 and not always) else 0
    rounds = runs + extra
    own = proxies is None
    if proxies is None:
        proxies = {s.name: Proxy(s, delay) for s in sc.servers} if count_round else {}
    per: dict[str, dict[str, Any]] = {t.name: {"runs": [], "verdicts": [], "counts": None} for t in sc.tools}
    try:
        for r in range(rounds):
            via_proxy = always or (count_round and r == 0)
            counted_now = count_round and r == 0
            timed = not extra or r > 0
            if sc.before_round:
                sc.before_round(r)
            order = sc.tools if r % 2 == 0 else list(reversed(sc.tools))
            for tool in order:

                def ep(server: Server, via_proxy: bool = via_proxy) -> str:
                    return proxies[server.name].url if via_proxy else server.endpoint

                for p in proxies.values():
                    p.reset()
                argv, env, cwd = tool.prepare(r, ep)
                m = measure.run(
                    argv,
                    env=env,
                    cwd=cwd,
                    servers=sc.servers,
                    proxies=list(proxies.values()) if via_proxy else [],
                    scratch=tools.RUN / "logs" / f"{tag}{sc.server.name}-{sc.name}-{tool.name}-r{r}".replace(" ", "_"),
                )
                if counted_now:
                    counts: dict[str, int] = {}
                    for name, p in proxies.items():
                        for op, c in p.counts().items():
                            counts[op if len(proxies) == 1 else f"{name}:{op}"] = c
                    per[tool.name]["counts"] = counts
                try:
                    verdict = tool.verify(r, m)
                except Exception as err:
                    verdict = {"ok": False, "error": f"verify failed: {err!r}"}
                if m.rc != 0:
                    verdict = {**verdict, "ok": False, "error": f"exit {m.rc}: {_tail(m.stderr or m.stdout)}"}
                tool.cleanup(r)
                if timed:
                    per[tool.name]["runs"].append(m.to_dict() | {"via_proxy": via_proxy})
                per[tool.name]["verdicts"].append(verdict)
                log(
                    f"  {sc.server.name} {sc.name:<22} {tool.name:<34} r{r} {m.seconds:7.2f}s "
                    f"{'ok' if verdict.get('ok') else 'WRONG ' + json_short(verdict)}"
                    + (" (counted)" if counted_now else "")
                )
    finally:
        if own:
            for p in proxies.values():
                p.stop()
    return summarize(sc, per, runs, delay or max((p.delay for p in proxies.values()), default=0.0))


def _median_or_none(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def json_short(v: dict[str, Any]) -> str:
    keys = ("error", "missing", "extra", "wrong_bytes", "examples")
    return str({k: v[k] for k in keys if v.get(k)})[:300]


def summarize(sc: Scenario, per: dict[str, dict[str, Any]], runs: int, delay: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scenario": sc.name,
        "server": sc.server.name,
        "objects": sc.objects,
        "note": sc.note,
        "runs": runs,
        "latency_ms": round(delay * 1000),
        "bytes": sc.bytes or None,
        "tools": {},
    }
    for name, d in per.items():
        rs = d["runs"]
        med = statistics.median(x["seconds"] for x in rs) if rs else None
        counts = d["counts"] or {}
        total = sum(counts.values())
        verdicts = d["verdicts"]
        out["tools"][name] = {
            "kind": "ours" if name == OURS else ("floor" if name == FLOOR else "peer"),
            "median_s": med,
            "seconds": [x["seconds"] for x in rs],
            "objects_per_s": round(sc.objects / med, 1) if med else None,
            "mib_per_s": round(sc.bytes / (1 << 20) / med, 3) if med and sc.bytes else None,
            "requests": counts,
            "requests_per_object": {op: round(c / sc.objects, 3) for op, c in sorted(counts.items())}
            if sc.objects
            else {},
            "requests_total_per_object": round(total / sc.objects, 3) if sc.objects else None,
            "server_busy_pct": statistics.median(x["server_busy_pct"] for x in rs) if rs else None,
            "proxy_busy_pct": _median_or_none([x.get("proxy_busy_pct") for x in rs]),
            "client_cpu_s": statistics.median(x["client_cpu_s"] for x in rs) if rs else None,
            # user = the tool's own work; sys = the kernel's (file creation on a shared VM varies 2x run to run)
            "client_user_s": statistics.median(x["client_user_s"] for x in rs) if rs else None,
            "client_sys_s": statistics.median(x["client_sys_s"] for x in rs) if rs else None,
            "peak_rss_mib": max(x["peak_rss_mib"] for x in rs) if rs else None,
            "correct": bool(verdicts) and all(v.get("ok") for v in verdicts),
            "verdicts": verdicts,
            "timed_through_proxy": bool(rs) and all(x["via_proxy"] for x in rs),
            "exit_codes": [x["rc"] for x in rs],
        }
    ours = out["tools"].get(OURS, {}).get("median_s")
    for t in out["tools"].values():
        t["ours_over_theirs"] = round(ours / t["median_s"], 3) if ours and t["median_s"] else None
    return out


def ceiling(server: Server, seconds: float = 3.0, procs: int = 2, threads: int = 8) -> dict[str, Any]:
    """Trivial requests/s the server answers: presigned GETs of a 1-byte object, the lightest client there is."""
    import subprocess
    import sys

    c = server.client()
    bucket = "bench-ceiling-" + str(int(time.time()))
    c.create_bucket(Bucket=bucket)
    c.put_object(Bucket=bucket, Key="x", Body=b"x")
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "x"}, ExpiresIn=3600)
    cpu0 = server.cpu_seconds()
    t0 = time.monotonic()
    ps = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.ceiling", url, str(seconds), str(threads)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(tools.REPO),
        )
        for _ in range(procs)
    ]
    total = sum(int(p.communicate()[0].strip() or 0) for p in ps)
    wall = time.monotonic() - t0
    cpu = server.cpu_seconds() - cpu0
    return {
        "server": server.name,
        "requests_per_s": round(total / seconds, 1),
        "server_busy_pct": round(100 * cpu / wall, 1),
        "how": f"{procs} processes x {threads} threads of http.client GETting a presigned 1-byte object "
        f"for {seconds:g}s",
    }
