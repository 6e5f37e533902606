"""The scenarios: for each, the contenders (ours, the peers, the boto3 floor), how each one is
run, how its result is checked against the known history, and how its traces are cleaned up.

A contender is `Tool(name, prepare, verify, cleanup)`: `prepare(run, ep)` returns
(argv, env, cwd) for one run, where `ep(server)` is the URL to use for that
server (the server itself, or the counting / latency proxy in front of it);
`verify(run, measurement)` returns the verdict of `history.compare`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import tools
from .history import UNITS_ROOT, BigObject, Event, History, body_for, compare, stream_md5
from .measure import Measurement
from .servers import REPO, Server

Endpoint = Callable[[Server], str]
Prepared = tuple[list[str], dict[str, str], Path]
OURS = "dr-tasks"
FLOOR = "boto3 floor"


@dataclass
class Tool:
    name: str
    prepare: Callable[[int, Endpoint], Prepared]
    verify: Callable[[int, Measurement], dict[str, Any]]
    cleanup: Callable[[int], None]


@dataclass
class Scenario:
    name: str
    server: Server
    objects: int  # objects the job moves (the denominator of objects/s and requests/object)
    tools: list[Tool]
    servers: list[Server]  # whose CPU counts as "server busy", and which get a counting proxy
    note: str = ""
    before_round: Callable[[int], None] | None = None
    bytes: int = 0  # bytes the job moves, when that is the point (one big object): MiB/s is reported


def _noop(_run: int) -> None:
    pass


def _aws_sync_via(
    aws: str, server: Server, ep: Endpoint, src: str, dest_server: Server, dest: str, stage: Path, work: Path
) -> Prepared:
    """awscli cannot copy between endpoints: `aws s3 sync` down to `stage`, then up (what users do)."""
    script = (
        f"{aws} s3 sync --only-show-errors --endpoint-url {ep(server)} s3://{src}/ {stage}/ && "
        f"{aws} s3 sync --only-show-errors --endpoint-url {ep(dest_server)} {stage}/ s3://{dest}/"
    )
    env = tools.peer_env(server, ep(server))
    env.pop("AWS_ENDPOINT_URL")
    return ["sh", "-c", script], env, work


def list_etags(client: Any, bucket: str, prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix) :]] = o["ETag"].strip('"')
    return out


def purge(client: Any, bucket: str, prefix: str = "") -> None:
    """Delete every version and marker under `prefix` (keeps moto's per-listing copy of the bucket small)."""
    batch: list[dict[str, str]] = []

    def flush() -> None:
        if batch:
            client.delete_objects(Bucket=bucket, Delete={"Objects": list(batch), "Quiet": True})
            batch.clear()

    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            batch.append({"Key": v["Key"], "VersionId": v["VersionId"]})
            if len(batch) == 1000:
                flush()
    flush()


def local_md5s(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = hashlib.md5(p.read_bytes()).hexdigest()
    return out


def _strip(expected: dict[str, tuple[str, int]], prefix: str) -> dict[str, tuple[str, int]]:
    return {k[len(prefix) :]: v for k, v in expected.items()}


def json_out(text: str) -> dict[str, Any]:
    """The JSON object a `--json` task printed on stdout."""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(text[start:])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def ours_tools(make: Callable[[str, tools.HostRepo], Tool], host: Path, server: Server, bucket: str) -> list[Tool]:
    """Ours, plus each `--baseline` revision in its own host repo (its own index and holding dir)."""
    out = [make(OURS, tools.HostRepo(host, server, bucket))]
    for label, inv in tools.BASELINES:
        out.append(make(label, tools.HostRepo(host.with_name(f"{host.name}-{label}"), server, bucket, inv=inv)))
    return out


def _exists(rel: str) -> bool:
    return (REPO / rel).exists()


# ---------------------------------------------------------------------- snapshot
def snapshot(server: Server, hist: History, work: Path, peers: tools.Peers) -> Scenario:
    client = server.client()
    b = hist.bucket
    expected = _strip(hist.state_at(None, "state/"), "state/")

    def cleanup(_run: int) -> None:
        purge(client, b, "snapshots/")
        purge(client, b, "peer/")

    def peer_dest(name: str, run: int) -> str:
        return f"peer/{name}-r{run}/"

    def verify_peer(name: str) -> Callable[[int, Measurement], dict[str, Any]]:
        def verify(run: int, m: Measurement) -> dict[str, Any]:
            return compare(expected, list_etags(client, b, peer_dest(name, run)))

        return verify

    def ours_tool(name: str, repo: tools.HostRepo) -> Tool:
        def prepare(run: int, ep: Endpoint) -> Prepared:
            repo.configure(ep(server))
            return repo.argv("dr.snapshot", f"--label=bench-r{run}", "--json"), repo.env(), repo.path

        def verify(run: int, m: Measurement) -> dict[str, Any]:
            dest = str(json_out(m.stdout).get("dest", ""))
            prefix = dest.removeprefix(f"s3://{b}/")
            if not prefix:
                return {"ok": False, "error": "no dest in the --json output"}
            got = list_etags(client, b, prefix)
            return compare(expected, {k.removeprefix("state/"): v for k, v in got.items()})

        return Tool(name, prepare, verify, cleanup)

    ts = ours_tools(ours_tool, work / "host-snapshot", server, b)
    if peers.aws:
        aws = str(tools.PEERS / "bin" / "aws")
        ts.append(
            Tool(
                "aws s3 cp",
                lambda run, ep: (
                    [
                        aws,
                        "s3",
                        "cp",
                        "--recursive",
                        "--only-show-errors",
                        f"s3://{b}/state/",
                        f"s3://{b}/peer/aws-r{run}/",
                    ],
                    tools.peer_env(server, ep(server)),
                    work,
                ),
                verify_peer("aws"),
                cleanup,
            )
        )
    if peers.rclone:
        ts.append(
            Tool(
                "rclone copy",
                lambda run, ep: (
                    ["rclone", "copy", f"SRC:{b}/state", f"SRC:{b}/{peer_dest('rclone', run)}"],
                    tools.peer_env(server, ep(server)),
                    work,
                ),
                verify_peer("rclone"),
                cleanup,
            )
        )
    ts.append(
        Tool(
            FLOOR,
            lambda run, ep: (
                tools.floor_argv(
                    "snapshot", endpoint=ep(server), bucket=b, prefix="state/", dest=peer_dest("floor", run)
                ),
                tools.floor_env(server),
                REPO,
            ),
            verify_peer("floor"),
            cleanup,
        )
    )
    return Scenario("snapshot", server, len(expected), ts, [server], note="server-side copies, same bucket")


# ---------------------------------------------------------------------- restore
def restore(
    server: Server, hist: History, work: Path, peers: tools.Peers, unit: int | None, rclone_variants: bool = True
) -> Scenario | None:
    """Point-in-time restore of one unit (or of every unit) at the history's T, to a local dir."""
    if not (_exists("dr_tasks/ops/restore.py") or _exists("dr_tasks/ops/restore")):
        return None
    b = hist.bucket
    prefix = hist.unit_prefix(unit) if unit is not None else UNITS_ROOT
    expected = _strip(hist.state_at(hist.t, prefix), prefix)
    unit_name = f"u{unit:02d}" if unit is not None else None
    name = f"restore {unit_name}" if unit is not None else "restore all units"
    out_root = work / "restore-out"

    def dest(tool: str, run: int) -> Path:
        return out_root / f"{tool}-r{run}"

    def cleanup_dir(tool: str) -> Callable[[int], None]:
        def cleanup(run: int) -> None:
            shutil.rmtree(dest(tool, run), ignore_errors=True)

        return cleanup

    def verify_dir(tool: str, sub: str) -> Callable[[int, Measurement], dict[str, Any]]:
        # `sub`: where the tool puts the prefix's contents, relative to its dest dir.
        def verify(run: int, m: Measurement) -> dict[str, Any]:
            return compare(expected, local_md5s(dest(tool, run) / sub))

        return verify

    def ours_tool(name: str, repo: tools.HostRepo) -> Tool:
        def prepare(run: int, ep: Endpoint) -> Prepared:
            # restore_dir stays the default `_restore` (it must be gitignored and denied inside the repo).
            repo.configure(ep(server))
            return repo.argv(*ours_restore_args(unit_name, hist.t_iso)), repo.env(), repo.path

        def verify(run: int, m: Measurement) -> dict[str, Any]:
            # One holding dir <restore_dir>/<UNIT or all>-<compact TS>/ (plus its receipt file beside it);
            # with --all the names are relative to the repo root.
            got: dict[str, str] = {}
            root = repo.path / "_restore"
            holdings = [d for d in root.iterdir() if d.is_dir()] if root.exists() else []
            for holding in holdings:
                for rel, md5 in local_md5s(holding).items():
                    got[rel if unit_name else rel.removeprefix(prefix)] = md5
            return compare(expected, got)

        def cleanup(run: int) -> None:
            shutil.rmtree(repo.path / "_restore", ignore_errors=True)

        return Tool(name, prepare, verify, cleanup)

    ts = ours_tools(ours_tool, work / "host-restore", server, b)
    if peers.pit:
        pit = str(tools.PEERS / "bin" / "s3-pit-restore")
        ts.append(
            Tool(
                "s3-pit-restore",
                lambda run, ep: (
                    [pit, "-b", b, "-p", prefix, "-t", hist.t_iso, "-d", str(dest("pit", run))],
                    tools.peer_env(server, ep(server)),
                    work,
                ),
                verify_dir("pit", prefix),
                cleanup_dir("pit"),
            )
        )
    if peers.rclone:
        for fast in (False, True) if rclone_variants else (True,):
            tool = "rclone-fl" if fast else "rclone"

            def prep(run: int, ep: Endpoint, tool: str = tool, fast: bool = fast) -> Prepared:
                argv = ["rclone", "copy", f"SRC:{b}/{prefix.rstrip('/')}", str(dest(tool, run))]
                argv += ["--s3-version-at", hist.t_iso] + (["--fast-list"] if fast else [])
                return argv, tools.peer_env(server, ep(server)), work

            ts.append(
                Tool(
                    "rclone --s3-version-at" + (" --fast-list" if fast else ""),
                    prep,
                    verify_dir(tool, ""),
                    cleanup_dir(tool),
                )
            )
    ts.append(
        Tool(
            FLOOR,
            lambda run, ep: (
                tools.floor_argv(
                    "restore",
                    endpoint=ep(server),
                    bucket=b,
                    prefix=prefix,
                    dest=str(dest("floor", run)),
                    at=hist.t_iso,
                ),
                tools.floor_env(server),
                REPO,
            ),
            verify_dir("floor", ""),
            cleanup_dir("floor"),
        )
    )
    return Scenario(name, server, len(expected), ts, [server], note=f"TS = {hist.t_iso}, to a local dir")


def ours_restore_args(unit: str | None, ts: str) -> list[str]:
    """`inv dr.restore UNIT TS`, or `inv dr.restore --all TS` for the whole substrate."""
    if unit is None:
        # Not `--all TS`: invoke then fails with "No idea what 'TS' is!" (reported to the lead).
        return ["dr.restore", "--all", f"--ts={ts}"]
    return ["dr.restore", unit, ts]


# ---------------------------------------------------------------------- backup
@dataclass
class BackupState:
    """Destination buckets that persist across the phases (first -> no-change -> 1%-changed).

    Keyed by (route, tool): the counted round goes through the proxies and the timed rounds
    straight to the servers, and our incremental state is bound to the source endpoint URL,
    so each route keeps its own destinations (see bench/README.md).
    """

    dests: dict[tuple[str, str], str]


def backup(
    server: Server,
    dest_server: Server,
    hist: History,
    work: Path,
    peers: tools.Peers,
    phase: str,
    state: BackupState,
    runs: int = 1,
) -> Scenario | None:
    """Cross-region backup between two servers. phase: "first", "no-change" or "1%-changed".

    "first": every run starts from a new, empty destination bucket. The later phases
    reuse each tool's destination from the last "first" run on the same route; "1%-changed"
    rewrites 1% of the source objects (same size, new bytes) before each round, so every
    destination has exactly 1% to catch up on (round 1, the first direct one, catches up
    on round 0's change, which only the proxied destinations saw).
    """
    if not (_exists("dr_tasks/ops/backup.py") and _exists("dr_tasks/tasks/backup.py")):
        return None
    src = server.client()
    dst = dest_server.client()
    b = hist.bucket
    names = [OURS] + (["aws"] if peers.aws else []) + (["rclone", "rclone-checksum"] if peers.rclone else [])
    names.append("floor")

    def new_dest(tool: str, run: int, ep: Endpoint) -> str:
        route = "direct" if ep(server) == server.endpoint else "proxied"
        if phase != "first":
            return state.dests[(route, tool)]
        name = f"bk-{tool.replace('-', '').replace('@', '')[:10]}-{run}-{uuid.uuid4().hex[:6]}"
        dst.create_bucket(Bucket=name)
        dst.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        state.dests[(route, tool)] = name
        return name

    current: dict[tuple[str, int], str] = {}

    def expected() -> dict[str, tuple[str, int]]:
        return hist.state_at(None, "state/")

    def verify_bucket(tool: str) -> Callable[[int, Measurement], dict[str, Any]]:
        def verify(run: int, m: Measurement) -> dict[str, Any]:
            got = list_etags(dst, current[(tool, run)], "")
            return compare(expected(), {k: v for k, v in got.items() if k.startswith("state/")})

        return verify

    def ours_tool(name: str, repo: tools.HostRepo) -> Tool:
        def prepare(run: int, ep: Endpoint) -> Prepared:
            current[(name, run)] = new_dest(name, run, ep)
            backup = {"bucket": current[(name, run)], "endpoint_url": ep(dest_server), "region": "us-east-1"}
            repo.configure(ep(server), backup=backup)
            return repo.argv("dr.backup", "--json"), repo.env(), repo.path

        return Tool(name, prepare, verify_bucket(name), _noop)

    ts = ours_tools(ours_tool, work / "host-backup", server, b)
    if "aws" in names:
        aws = str(tools.PEERS / "bin" / "aws")

        def aws_prepare(run: int, ep: Endpoint) -> Prepared:
            # awscli cannot copy between endpoints: sync down to a local dir, then up (what users do).
            current[("aws", run)] = new_dest("aws", run, ep)
            # The local copy persists with its destination, as a user's would between runs.
            stage = work / f"aws-stage-{current[('aws', run)]}"
            return _aws_sync_via(aws, server, ep, b, dest_server, current[("aws", run)], stage, work)

        ts.append(Tool("aws s3 sync (via local dir)", aws_prepare, verify_bucket("aws"), _noop))
    if "rclone" in names:
        for tool, extra in (("rclone", []), ("rclone-checksum", ["--checksum"])):

            def rclone_prepare(run: int, ep: Endpoint, tool: str = tool, extra: list[str] = extra) -> Prepared:
                current[(tool, run)] = new_dest(tool, run, ep)
                argv = ["rclone", "copy", f"SRC:{b}", f"DST:{current[(tool, run)]}", *extra]
                return argv, tools.peer_env(server, ep(server), (dest_server, ep(dest_server))), work

            ts.append(
                Tool("rclone copy" + (" --checksum" if extra else ""), rclone_prepare, verify_bucket(tool), _noop)
            )

    def floor_prepare(run: int, ep: Endpoint) -> Prepared:
        current[("floor", run)] = new_dest("floor", run, ep)
        argv = tools.floor_argv(
            "backup",
            endpoint=ep(server),
            bucket=b,
            dest_endpoint=ep(dest_server),
            dest_bucket=current[("floor", run)],
        )
        return argv, tools.floor_env(server, dest_server), REPO

    ts.append(Tool(FLOOR, floor_prepare, verify_bucket("floor"), _noop))

    live = sorted(expected())
    n_change = max(1, len(live) // 100)

    def change_one_percent(run: int) -> None:
        if run == 1 and runs > 1:
            return
        # Same size, new bytes: a size-only comparison (aws s3 sync's) misses these.
        keys = live[(run * n_change) % len(live) :][:n_change]
        for k in keys:
            gen = 1000 + run
            data = body_for(k, gen, hist.size)
            src.put_object(Bucket=b, Key=k, Body=data)
            hist.events[k].append(Event(k, "put", hashlib.md5(data).hexdigest(), hist.size))

    before = change_one_percent if phase == "1%-changed" else None
    moved = {"first": len(live), "no-change": len(live), "1%-changed": len(live)}[phase]
    return Scenario(
        f"backup {phase}",
        server,
        moved,
        ts,
        [server, dest_server],
        note=f"{server.name} -> second {dest_server.name}; 1% = {n_change} objects"
        if phase == "1%-changed"
        else f"{server.name} -> second {dest_server.name}",
        before_round=before,
    )


# ---------------------------------------------------------------------- one big object
def human_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def bigobject(server: Server, dest_server: Server, big: BigObject, work: Path, peers: tools.Peers) -> Scenario | None:
    """First-run cross-region backup of a bucket holding ONE object: time and the client's peak RSS.

    Run with a 512 MiB object and with a 4 KiB one: a client that streams keeps the same
    peak RSS for both (dr-tasks: one 8 MiB part per worker); one that buffers the object
    grows by its size. Every run goes to a new destination bucket, which is checked (MD5 of
    the copy, read back) and then emptied, so the destination server never holds more than
    one copy.
    """
    if not (_exists("dr_tasks/ops/backup.py") and _exists("dr_tasks/tasks/backup.py")):
        return None
    dst = dest_server.client()
    b = big.bucket
    dests: dict[tuple[str, int], str] = {}

    def new_dest(tool: str, run: int) -> str:
        name = f"bb-{tool.replace('-', '')[:10]}-{run}-{uuid.uuid4().hex[:6]}"
        dst.create_bucket(Bucket=name)
        dst.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        dests[(tool, run)] = name
        return name

    def verify(tool: str) -> Callable[[int, Measurement], dict[str, Any]]:
        def check(run: int, m: Measurement) -> dict[str, Any]:
            name = dests[(tool, run)]
            keys = [k for k in list_etags(dst, name, "") if not k.startswith(".dr-tasks/")]
            if keys != [big.key]:
                return {"ok": False, "error": f"destination holds {keys[:3]}, expected [{big.key!r}]"}
            md5, size = stream_md5(dst, name, big.key)
            ok = md5 == big.md5 and size == big.size
            return {
                "ok": ok,
                "expected": 1,
                "got": 1,
                "wrong_bytes": 0 if ok else 1,
                "examples": [] if ok else [big.key],
            }

        return check

    def cleanup(tool: str) -> Callable[[int], None]:
        def clean(run: int) -> None:
            name = dests.pop((tool, run), None)
            if name:
                purge(dst, name)
                dst.delete_bucket(Bucket=name)
                # RGW frees a deleted object's data later, in its garbage collector; run it now
                # so the in-RAM OSD does not fill up with old copies.
                dest_server.collect_garbage()
            shutil.rmtree(work / f"aws-stage-{tool}-r{run}", ignore_errors=True)

        return clean

    repo = tools.HostRepo(work / f"host-big-{big.size}", server, b)

    def ours_prepare(run: int, ep: Endpoint) -> Prepared:
        repo.configure(
            ep(server), backup={"bucket": new_dest(OURS, run), "endpoint_url": ep(dest_server), "region": "us-east-1"}
        )
        return repo.argv("dr.backup", "--json"), repo.env(), repo.path

    ts: list[Tool] = [Tool(OURS, ours_prepare, verify(OURS), cleanup(OURS))]
    if peers.aws:
        aws = str(tools.PEERS / "bin" / "aws")

        def aws_prepare(run: int, ep: Endpoint) -> Prepared:
            stage = work / f"aws-stage-aws-r{run}"
            return _aws_sync_via(aws, server, ep, b, dest_server, new_dest("aws", run), stage, work)

        ts.append(Tool("aws s3 sync (via local dir)", aws_prepare, verify("aws"), cleanup("aws")))
    if peers.rclone:

        def rclone_prepare(run: int, ep: Endpoint) -> Prepared:
            argv = ["rclone", "copy", f"SRC:{b}", f"DST:{new_dest('rclone', run)}"]
            return argv, tools.peer_env(server, ep(server), (dest_server, ep(dest_server))), work

        ts.append(Tool("rclone copy", rclone_prepare, verify("rclone"), cleanup("rclone")))

    def floor_prepare(run: int, ep: Endpoint) -> Prepared:
        argv = tools.floor_argv(
            "backup", endpoint=ep(server), bucket=b, dest_endpoint=ep(dest_server), dest_bucket=new_dest("floor", run)
        )
        return argv, tools.floor_env(server, dest_server), REPO

    ts.append(Tool(FLOOR, floor_prepare, verify("floor"), cleanup("floor")))
    return Scenario(
        f"backup one {human_size(big.size)} object",
        server,
        1,
        ts,
        [server, dest_server],
        note=f"first run, {server.name} -> second {dest_server.name}; one object of {human_size(big.size)} "
        f"(random bytes, multipart at the source when > 8 MiB); peak RSS = the client's process tree",
        bytes=big.size,
    )
