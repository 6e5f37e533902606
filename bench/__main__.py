"""`python -m bench [--n=N] [--quick] ...` (or `inv bench`): see bench/README.md."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import history, report, runner, scenarios, servers, tools

DEFAULT_SIZES = "1000,5000,10000"
MOTO_CAP = 2000  # moto's ListObjectVersions deep-copies the whole bucket per call: keep it small.


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench", description="dr-tasks against aws s3 / rclone / s3-pit-restore"
    )
    ap.add_argument("--n", type=int, default=0, help="objects to seed on RGW (default 10000; --quick: 200)")
    ap.add_argument("--moto-n", type=int, default=0, help=f"objects on moto (default min(N, {MOTO_CAP}))")
    ap.add_argument("--quick", action="store_true", help="the CI smoke: N=200, one run each, no peer install")
    ap.add_argument("--runs", type=int, default=0, help="timed runs per tool (default 3; --quick: 1)")
    ap.add_argument("--servers", default="moto,rgw", help="comma list of moto, rgw")
    ap.add_argument(
        "--only",
        default="ceiling,restore,snapshot,backup,bigobject,latency",
        help="comma list of ceiling, restore, snapshot, backup, bigobject (RGW), latency, scaling",
    )
    ap.add_argument(
        "--sizes",
        default=None,
        help="N values for the time-against-N chart (RGW), e.g. 1000,5000,10000 (the default when N is the "
        "default 10000: the N=10000 point reuses the main run's restore and snapshot); 'none' for no chart",
    )
    ap.add_argument("--latency-n", type=int, default=1000, help="objects in latency mode")
    ap.add_argument(
        "--big-mib", type=int, default=0, help="bigobject: the object's size in MiB (default 512; --quick: 16)"
    )
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--no-install", action="store_true", help="do not pip/apt-get install missing peers")
    ap.add_argument("--peers", default="aws,s3-pit-restore,rclone", help="comma list of peers to run, or none")
    ap.add_argument("--out", default=str(tools.OUT))
    ap.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="REV",
        help="also run dr-tasks at git revision REV (installed into bench/out/baseline-<sha>) beside ours",
    )
    a = ap.parse_args(argv)
    only_given = any(x.startswith("--only") for x in (sys.argv[1:] if argv is None else argv))
    if a.quick:
        a.n = a.n or 200
        a.runs = a.runs or 1
        a.no_install = True
        if not only_given:
            a.only = "ceiling,restore,snapshot,backup,bigobject"
        a.big_mib = a.big_mib or 16
    if a.sizes is None:
        # The chart comes with the full default run; a run narrowed by --only or --n asks for it.
        a.sizes = DEFAULT_SIZES if not (a.quick or a.n or only_given) else ""
    a.sizes = "" if a.sizes == "none" else a.sizes
    a.n = a.n or 10000
    a.big_mib = a.big_mib or 512
    a.runs = a.runs or 3
    a.moto_n = a.moto_n or min(a.n, MOTO_CAP)
    if a.sizes and "scaling" not in a.only:
        a.only += ",scaling"
    return a


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    # A kill (timeout, Ctrl-C from a parent) unwinds like an error: the finally blocks stop the
    # servers and proxies this run started instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = set(a.only.split(","))
    out = Path(a.out).resolve()
    # Scratch (work/, logs/) under --out: a second bench with another --out leaves this one's alone.
    tools.set_run_dir(out)
    servers.LOG_DIR = out
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.rmtree(out / "logs", ignore_errors=True)
    wanted = set(a.peers.split(",")) - {"none", ""}
    peers = tools.find_peers(install=not a.no_install, wanted=wanted, log=log)
    log(f"peers: {peers.to_dict()}")
    tools.BASELINES[:] = [tools.install_baseline(rev, log=log) for rev in a.baseline]
    results: dict[str, Any] = {
        "meta": {
            "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "runs": a.runs,
            "n": {"rgw": a.n, "moto": a.moto_n},
            "peers": peers.to_dict(),
            "baselines": [label for label, _ in tools.BASELINES],
            "missing_scenarios": [],
        },
        "ceilings": [],
        "histories": [],
        "scenarios": [],
        "scaling": [],
    }

    def add(
        sc: scenarios.Scenario | None,
        what: str,
        delay: float = 0.0,
        tag: str = "",
        proxies: dict[str, servers.Proxy] | None = None,
    ) -> dict[str, Any] | None:
        if sc is None:
            note = f"{what}: not measured (our task is not built yet)"
            if note not in results["meta"]["missing_scenarios"]:
                results["meta"]["missing_scenarios"].append(note)
            log(note)
            return None
        res = runner.run_scenario(sc, a.runs, delay=delay, log=log, tag=tag, proxies=proxies)
        results["scenarios"].append(res)
        report.write(results, out)
        return res

    for kind in [s for s in a.servers.split(",") if s]:
        n = a.n if kind == "rgw" else a.moto_n
        log(f"starting {kind} ...")
        try:
            srv = servers.start_server(kind)
        except Exception as err:
            log(f"{kind} unavailable: {err}")
            results["meta"].setdefault("servers_skipped", {})[kind] = str(err)[:500]
            continue
        dest: servers.Server | None = None
        try:
            if "ceiling" in only:
                c = runner.ceiling(srv, seconds=0.5 if a.quick else 3.0)
                log(f"ceiling: {c}")
                results["ceilings"].append(c)
            if only & {"restore", "snapshot", "backup"}:
                hist = history.seed(srv.client(max_pool=32), n, log=log)
                results["histories"].append({"server": kind, **hist.summary()})
            w = work / kind
            if "restore" in only:
                if not a.quick:
                    add(scenarios.restore(srv, hist, w, peers, unit=7), "restore one unit")
                add(scenarios.restore(srv, hist, w, peers, unit=None, rclone_variants=False), "restore all units")
            if "snapshot" in only:
                add(scenarios.snapshot(srv, hist, w, peers), "snapshot")
            if only & {"backup", "latency"} or ("bigobject" in only and kind == "rgw"):
                dest = servers.start_server(kind, name=f"{kind}-b")
            if "backup" in only:
                state = scenarios.BackupState({})
                # The same counting proxies for every phase: our incremental state is bound to the
                # source endpoint URL, so a new proxy port per phase would make each run a first run.
                bproxies = {s.name: servers.Proxy(s) for s in (srv, dest)}
                try:
                    for phase in ("first", "no-change", "1%-changed"):
                        sc = scenarios.backup(srv, dest, hist, w, peers, phase, state, a.runs)
                        add(sc, f"backup {phase}", proxies=bproxies)
                finally:
                    for p in bproxies.values():
                        p.stop()
            if "bigobject" in only and kind == "rgw" and dest is not None:
                # One big object, then one 4 KiB object: peak RSS must not grow with the size.
                for size in (a.big_mib << 20, 4 << 10):
                    big = history.seed_big(srv.client(), size, log=log)
                    results["histories"].append({"server": kind, "bigobject": big.summary()})
                    add(scenarios.bigobject(srv, dest, big, work / f"{kind}-big", peers), "backup one big object")
                    scenarios.purge(srv.client(), big.bucket)
                    srv.collect_garbage()
            if "latency" in only:
                lat = history.seed(srv.client(max_pool=32), min(a.latency_n, n), log=log)
                wl = work / f"{kind}-latency"
                d = a.latency_ms / 1000
                add(scenarios.restore(srv, lat, wl, peers, unit=None, rclone_variants=False), "latency restore", d)
                add(scenarios.snapshot(srv, lat, wl, peers), "latency snapshot", d)
                if dest is not None:
                    lproxies = {s.name: servers.Proxy(s, d) for s in (srv, dest)}
                    try:
                        sc = scenarios.backup(srv, dest, lat, wl, peers, "first", scenarios.BackupState({}), a.runs)
                        add(sc, "latency backup first", d, proxies=lproxies)
                    finally:
                        for p in lproxies.values():
                            p.stop()
            if "scaling" in only and a.sizes and kind == "rgw":
                scaled = ("restore all units", "snapshot")
                for size in [int(x) for x in a.sizes.split(",")]:
                    done = [
                        r
                        for r in results["scenarios"]
                        if r["server"] == kind and r["scenario"] in scaled and not r["latency_ms"] and size == n
                    ]
                    reused = len(done) == len(scaled)
                    if not reused:
                        # Timing only (no counting round through the proxy): the chart shows seconds.
                        log(f"time against N: seeding N={size}")
                        h = history.seed(srv.client(max_pool=32), size, log=log)
                        ws = work / f"{kind}-scale-{size}"
                        done = []
                        for sc in (
                            scenarios.restore(srv, h, ws, peers, unit=None, rclone_variants=False),
                            scenarios.snapshot(srv, h, ws, peers),
                        ):
                            if sc is not None:
                                done.append(runner.run_scenario(sc, a.runs, log=log, tag=f"n{size}-", counted=False))
                        scenarios.purge(srv.client(), h.bucket)
                    # else: N is the main run's N, whose restore and snapshot were just measured: reuse them.
                    for res in done:
                        for tool, t in res["tools"].items():
                            results["scaling"].append(
                                {
                                    "server": kind,
                                    "scenario": res["scenario"],
                                    "tool": tool,
                                    "n": size,
                                    "objects": res["objects"],
                                    "median_s": t["median_s"],
                                    "min_s": min(t["seconds"]) if t["seconds"] else None,
                                    "seconds": t["seconds"],
                                    "client_user_s": t["client_user_s"],
                                    "client_sys_s": t["client_sys_s"],
                                    "peak_rss_mib": t.get("peak_rss_mib"),
                                    "reused": reused,
                                }
                            )
                    report.write(results, out)
        finally:
            srv.stop()
            if dest is not None:
                dest.stop()
    paths = report.write(results, out)
    log("wrote " + ", ".join(str(p) for p in paths))
    print(report.markdown(results))
    ours_ok = all(
        t["correct"] for sc in results["scenarios"] for name, t in sc["tools"].items() if name == scenarios.OURS
    )
    return 0 if ours_ok else 1


if __name__ == "__main__":
    sys.exit(main())
