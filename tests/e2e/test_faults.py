"""Fault injection end to end: the real `inv` against moto's server and Ceph RGW, through a fault proxy.

Three kinds of bad day, each for the operations it can hit:

1. `kill -9` of the `inv` process at a known point (the proxy parks one
   request, the test kills the process while it waits): snapshot, restore,
   backup, prune --apply, recover --apply (rollback: test_rollback.py).
   Afterwards the index has no torn row, and the PLAIN re-run (no
   --break-lock: the killed holder is provably not running on this machine)
   takes the lease over, says so in one line, logs a lock-break row, and ends
   in exactly the state a clean run makes (a clean run on a twin, compared
   with ids, version ids and timestamps left out).
2. Transient faults that need retrying: bursts of 503 SlowDown that need
   several retries of ONE request, 500s, resets, a GET whose body breaks off
   half-way ("cut"), during restore, rollback and backup (snapshot's are in
   test_snapshot.py); read timeouts before the headers and mid-body during all
   four. Each must end with the right bytes.
3. A fault that outlasts the retries (503 forever on one key): exit 1 naming
   the key and the operation, no row (a partial row for backup), and a re-run
   that converges once the fault is gone. AWS_MAX_ATTEMPTS=3 keeps it fast.

Not repeated here (see those files): single 503/500/reset bursts spread over
requests and a permanent 403 on snapshot, restore and backup; kill -9 and a
403 mid-rollback; a 403 mid-prune; the lease's own faults (test_lock.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dr_tasks import KeepRules, deep_verify, list_snapshots, prune, reindex, restore_at, run_backup, take_snapshot
from dr_tasks.index import Index
from dr_tasks.lease import LOCK_KEY
from dr_tasks.timeparse import compact_utc, iso_utc
from tests.conftest import (
    SAMPLE_FILES,
    HostRepo,
    Server,
    assert_clean_refusal,
    bucket_state,
    live_objects,
    local_tree,
    new_bucket,
)
from tests.support.faultproxy import FaultProxy, Rule

MiB = 1024 * 1024
UNIT = "alpha"
U = f"state/skills/{UNIT}/"
INDEX_KEY = "state/log/snapshots.ndjson"
STATE_KEY = ".dr-tasks/backup-state.json"
BIG_KEY = "state/big/multipart.bin"
# Few attempts, so a fault that outlasts them fails in about a second of backoff, not half a minute.
FEW_ATTEMPTS = {"AWS_MAX_ATTEMPTS": "3"}

# A host tasks.py that shortens botocore's read timeout (120 s in dr_tasks.s3), so a response that
# never comes times out in seconds. Only the timeout changes; everything else is the real package.
SHORT_TIMEOUT_TASKS = """\
import os

import dr_tasks.s3 as s3mod
from invoke import Collection
from dr_tasks import dr

_Config = s3mod.Config


def _short_read_timeout(*args, **kwargs):
    kwargs["read_timeout"] = float(os.environ["DR_TEST_READ_TIMEOUT"])
    return _Config(*args, **kwargs)


s3mod.Config = _short_read_timeout
ns = Collection(dr)
"""


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def dest_proxy(server: Server) -> Iterator[FaultProxy]:
    """A second fault proxy in front of the same server: the backup region's endpoint."""
    with FaultProxy(server.endpoint) as proxy:
        yield proxy


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    return r


def spawn(repo: HostRepo, *args: str) -> subprocess.Popen[str]:
    """`inv <args>` started the way `repo.run` starts it, but not waited for."""
    return repo.spawn(*args)


def wait_for(done: Callable[[], bool], proc: subprocess.Popen[str] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the process ended (exit {proc.returncode}) before the point it was to be killed at:\n{err}")
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the process to reach its kill point")
        time.sleep(0.02)


def kill_9_when_parked(proc: subprocess.Popen[str], proxy: FaultProxy, parked: str) -> None:
    """SIGKILL `proc` once the proxy holds its request `parked` ("<op>:<fault>"), then let the request go."""
    wait_for(lambda: proxy.faults[parked] >= 1, proc)
    time.sleep(0.2)  # requests in flight beside the parked one land or not: either is a state a kill can leave
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    proxy.clear()


def assert_no_torn_row(repo: HostRepo) -> None:
    read = Index(repo.index_path).read()
    assert read.bad == [] and not read.torn_tail, read.bad


def lock_entries(server: Server, bucket: str) -> list[tuple[str, str, str, bool]]:
    return [e for e in bucket_state(server, bucket) if e[0] == LOCK_KEY]


def assert_took_over(r: subprocess.CompletedProcess[str], pid: int) -> None:
    """The plain re-run took the killed run's lease over, and said so in one line naming it."""
    took = [line for line in r.stderr.splitlines() if "took over the lease" in line]
    assert len(took) == 1 and f"pid {pid} is not running on this machine" in took[0], r.stderr


def lease_pid(server: Server, bucket: str) -> int:
    body = server.client().get_object(Bucket=bucket, Key=LOCK_KEY)["Body"].read()
    return int(json.loads(body)["pid"])


def kinds(repo: HostRepo) -> list[str]:
    return [r["kind"] for r in repo.index_rows()]


def twin(make_repo: Callable[..., HostRepo], server: Server, files: dict[str, bytes] | None = None) -> HostRepo:
    """A fresh bucket and repo seeded like the test's, for the clean run to compare with."""
    repo = make_repo(server, new_bucket(server))
    repo.seed(files)
    return repo


def norm_manifest(raw: bytes) -> dict[str, Any]:
    """A manifest without what differs between two clean runs (ids, buckets, version ids, times)."""
    m = json.loads(raw)
    return {
        "label": m["label"],
        "prefix": m["prefix"],
        "versioned": m["versioned"],
        "objects": sorted((o["key"], o["size"], o["etag"]) for o in m["objects"]),
    }


def snapshot_end_state(repo: HostRepo) -> dict[str, Any]:
    """Live keys, and every snapshot the index records (its objects and manifest), ids left out."""
    objs = live_objects(repo.server, repo.bucket)
    live = {k: v for k, v in objs.items() if not k.startswith(("snapshots/", ".dr-tasks/"))}
    snaps = []
    rows = []
    for r in repo.index_rows():
        if r["kind"] != "snapshot":
            continue
        d = f"snapshots/{r['id']}/"
        content = {k[len(d) :]: hashlib.sha256(v).hexdigest() for k, v in objs.items() if k.startswith(d)}
        manifest = norm_manifest(objs[f"snapshots/{r['id']}.manifest.json"])
        snaps.append(json.dumps([r["label"], content, manifest], sort_keys=True))
        rows.append({k: r[k] for k in ("kind", "label", "objects", "bytes", "versioned")})
    return {"live": live, "snapshots": sorted(snaps), "rows": rows}


def settled_ts() -> tuple[str, datetime]:
    """A TS at or after every write so far that is already in the past (so no 'future' note)."""
    t = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (t - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    return iso_utc(t), t


def put(server: Server, bucket: str, key: str, data: bytes) -> None:
    server.client().put_object(Bucket=bucket, Key=key, Body=data)


UNIT_FILES: dict[str, bytes] = {
    f"{U}a.txt": b"alpha line 1\nalpha line 2\n",
    f"{U}big.bin": bytes(range(256)) * 1024,  # 256 KiB: a body worth cutting in half
    f"{U}c.json": b'{"k": 1}\n',
    f"{U}deep/d.md": b"# deep\n",
}


def seed_unit(server: Server, bucket: str) -> tuple[str, datetime]:
    for k, v in UNIT_FILES.items():
        put(server, bucket, k, v)
    return settled_ts()


def holding(repo: HostRepo, ts: datetime) -> Path:
    return repo.path / "_restore" / f"{UNIT}-{compact_utc(ts)}"


def unit_tree() -> dict[str, bytes]:
    return {k[len(U) :]: v for k, v in UNIT_FILES.items()}


def norm_receipt(path: Path) -> dict[str, Any]:
    r = json.loads(path.read_text())
    r.pop("created")
    return r


# backup: the primary is `server`, the backup region a second bucket on the same server behind `dest_proxy`
def configure_backup(repo: HostRepo, endpoint_url: str) -> str:
    dest = new_bucket(repo.server)
    repo.write_config(
        backup={
            "bucket": dest,
            "endpoint_url": endpoint_url,
            "region": "eu-west-1",
            "access_key_id": repo.server.access_key,
            "secret_access_key": repo.server.secret_key,
        }
    )
    return dest


def primary_objects(repo: HostRepo) -> dict[str, bytes]:
    return {k: v for k, v in live_objects(repo.server, repo.bucket).items() if not k.startswith(".dr-tasks/")}


def backup_objects(server: Server, dest: str) -> dict[str, bytes]:
    return {k: v for k, v in live_objects(server, dest).items() if not k.startswith(".dr-tasks/")}


def backup_state(server: Server, dest: str) -> dict[str, Any]:
    raw = server.client().get_object(Bucket=dest, Key=STATE_KEY)["Body"].read()
    return json.loads(raw)["objects"]


def open_uploads(server: Server, dest: str) -> list[str]:
    return [u["Key"] for u in server.client().list_multipart_uploads(Bucket=dest).get("Uploads", [])]


def backup_rows(repo: HostRepo) -> list[dict[str, Any]]:
    return [r for r in repo.index_rows() if r["kind"] == "cross-region-backup"]


def seeded_for_backup(repo: HostRepo, big: int) -> dict[str, bytes]:
    """Sample files, one object big enough for a multipart upload, and a snapshot of them."""
    files = repo.seed({**SAMPLE_FILES, BIG_KEY: os.urandom(big)})
    take_snapshot(repo.cfg(), "before-backup")
    return files


def clean_backup(make_repo: Callable[..., HostRepo], repo: HostRepo) -> tuple[str, HostRepo]:
    """A clean backup of the same primary into a fresh bucket (in-process): what the re-run must equal."""
    other = make_repo(repo.server, repo.bucket)
    dest = configure_backup(other, repo.server.endpoint)
    result = run_backup(other.cfg())
    assert not result.partial
    return dest, other


# rollback: a snapshot of the sample files, then a bad change
def seeded_with_snapshot(repo: HostRepo) -> tuple[dict[str, Any], dict[str, bytes]]:
    files = repo.seed()
    put(repo.server, repo.bucket, INDEX_KEY, b'{"pushed": "before the snapshot"}\n')
    snap = take_snapshot(repo.cfg(), "good")
    at_snapshot = {**files, INDEX_KEY: b'{"pushed": "before the snapshot"}\n'}
    return snap.row(), at_snapshot


def damage(repo: HostRepo) -> None:
    c = repo.server.client()
    c.put_object(Bucket=repo.bucket, Key="state/skills/alpha/a.txt", Body=b"a bad edit\n")
    c.delete_object(Bucket=repo.bucket, Key="state/skills/alpha/b.json")
    c.put_object(Bucket=repo.bucket, Key="state/skills/alpha/added.txt", Body=b"added after the snapshot\n")
    c.put_object(Bucket=repo.bucket, Key=INDEX_KEY, Body=b'{"pushed": "after the snapshot"}\n')


def live_state(repo: HostRepo) -> dict[str, bytes]:
    return {
        k: v
        for k, v in live_objects(repo.server, repo.bucket).items()
        if not k.startswith(("snapshots/", ".dr-tasks/"))
    }


def rolled_back(at_snapshot: dict[str, bytes]) -> dict[str, bytes]:
    """Live after a rollback: the snapshot, except the preserved index, which keeps its live bytes."""
    return {**at_snapshot, INDEX_KEY: b'{"pushed": "after the snapshot"}\n'}


# ====================================================================== 1. kill -9 at known points
SNAPSHOT_POINTS = {
    # the one listing of live keys is sent and never answered
    "listing": lambda: Rule(op="ListObjectVersions", prefix="", fault="hold"),
    # the other copies land, one never does
    "copies": lambda: Rule(op="CopyObject", key="beta/blob.bin", fault="hold"),
    # every copy and the manifest landed; the process dies before its index row
    "before-row": lambda: Rule(op="PutObject", key=".manifest.json", fault="hold-after"),
}


@pytest.mark.parametrize("point", list(SNAPSHOT_POINTS))
def test_kill_9_mid_snapshot_then_rerun_equals_a_clean_run(server, bucket, make_repo, fault_proxy, point):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    rule = fault_proxy.add(SNAPSHOT_POINTS[point]())
    proc = spawn(repo, "dr.snapshot", "--label=nightly")
    kill_9_when_parked(proc, fault_proxy, f"{rule.op}:{rule.fault}")

    assert repo.index_bytes() == b""
    left = live_objects(server, bucket, "snapshots/")
    manifests = [k for k in left if k.endswith(".manifest.json")]
    if point == "listing":
        assert left == {}
    elif point == "copies":
        assert manifests == [] and not any(k.endswith("beta/blob.bin") for k in left)
    else:
        # A complete snapshot whose row the kill took: the manifest is there, so `dr.reindex` finds it.
        assert len(manifests) == 1
    assert lock_entries(server, bucket) != []

    r = ok(repo.run("dr.snapshot", "--label=nightly", "--json"))
    assert_took_over(r, proc.pid)
    assert kinds(repo) == ["lock-break", "snapshot"]
    assert_no_torn_row(repo)
    assert lock_entries(server, bucket) == []

    clean = twin(make_repo, server, files)
    take_snapshot(clean.cfg(), "nightly")
    assert snapshot_end_state(repo) == snapshot_end_state(clean)

    if point == "before-row":
        killed_id = manifests[0][len("snapshots/") : -len(".manifest.json")]
        assert [r["id"] for r in reindex(repo.cfg()).snapshot_rows] == [killed_id]


def test_kill_9_mid_restore_leaves_no_holding_dir_and_the_same_restore_then_works(
    server, bucket, make_repo, fault_proxy
):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    ts, ts_dt = seed_unit(server, bucket)
    fault_proxy.add(Rule(op="GetObject", key="big.bin", fault="hold"))
    proc = spawn(repo, "dr.restore", UNIT, ts)
    wait_for(lambda: fault_proxy.counts["GetObject"] >= len(UNIT_FILES), proc)
    kill_9_when_parked(proc, fault_proxy, "GetObject:hold")

    hold = holding(repo, ts_dt)
    assert not hold.exists() and not hold.with_name(hold.name + ".json").exists()
    # What the kill left is only the hidden staging dir (never the holding dir, never a receipt).
    leftovers = sorted(p.name for p in (repo.path / "_restore").iterdir())
    assert all(n.startswith(f".{hold.name}.partial-") for n in leftovers), leftovers

    assert leftovers
    ok(repo.run("dr.restore", UNIT, ts))  # no --force: nothing of the killed run is in the way
    assert local_tree(hold) == unit_tree()
    # ...and the killed run's staging dir is gone: its pid is dead, so the next restore swept it.
    assert not [p for p in (repo.path / "_restore").iterdir() if p.name in leftovers]

    clean = make_repo(server, bucket)
    restore_at(clean.cfg(), ts, unit=UNIT)
    assert local_tree(hold) == local_tree(holding(clean, ts_dt))
    assert norm_receipt(hold.with_name(hold.name + ".json")) == norm_receipt(
        holding(clean, ts_dt).with_name(hold.name + ".json")
    )
    assert repo.index_bytes() == b""  # a restore writes no row


BACKUP_POINTS = {
    # one part of the two multipart uploads (the big object and its snapshot copy) lands, no other
    # part does: uploads left open at the destination
    "multipart": lambda: Rule(op="UploadPart", fault="hold", skip=1, times=-1),
    # every object and the state landed; the process dies before its index row (the state's first
    # PUT, skipped here, is the claim a first run writes before its first copy)
    "before-row": lambda: Rule(op="PutObject", key=STATE_KEY, fault="hold-after", skip=1),
}


@pytest.mark.parametrize("point", list(BACKUP_POINTS))
def test_kill_9_mid_backup_then_rerun_equals_a_clean_run(server, bucket, make_repo, dest_proxy, point):
    repo = make_repo(server, bucket)
    seeded_for_backup(repo, 12 * MiB + 5)
    dest = configure_backup(repo, dest_proxy.url)
    rule = dest_proxy.add(BACKUP_POINTS[point]())
    proc = spawn(repo, "dr.backup")
    kill_9_when_parked(proc, dest_proxy, f"{rule.op}:{rule.fault}")

    assert kinds(repo) == ["snapshot"]  # the snapshot taken before; no backup row
    if point == "multipart":
        # A cut-off upload is not an object: nothing at the destination holds part of the bytes.
        assert not any(k.endswith(BIG_KEY) for k in backup_objects(server, dest))
    r = ok(repo.run("dr.backup", "--json"))
    assert_took_over(r, proc.pid)
    result = json.loads(r.stdout)
    assert not result["partial"] and kinds(repo) == ["snapshot", "lock-break", "cross-region-backup"]
    if point == "before-row":
        assert result["copied"] == 0 and result["skipped"] == result["objects"]  # the state made it
    assert_no_torn_row(repo)
    assert lock_entries(server, bucket) == []

    assert backup_objects(server, dest) == primary_objects(repo)
    clean_dest, _ = clean_backup(make_repo, repo)
    assert backup_objects(server, dest) == backup_objects(server, clean_dest)
    assert backup_state(server, dest) == backup_state(server, clean_dest)
    # At most the killed run's own uploads are left open (docs/failure-modes.md: a lifecycle rule aborts them).
    assert all(k.endswith(BIG_KEY) for k in open_uploads(server, dest))
    assert open_uploads(server, clean_dest) == []


def make_dated_snapshots(repo: HostRepo) -> list[str]:
    cfg = repo.cfg()
    days = ["2026-03-01 09:00", "2026-03-02 09:00", "2026-03-03 09:00", "2026-03-04 09:00"]
    return [
        take_snapshot(cfg, "s", now=datetime.strptime(d, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)).id
        for d in days
    ]


def snapshot_prefix_state(repo: HostRepo) -> dict[str, Any]:
    objs = live_objects(repo.server, repo.bucket, "snapshots/")
    return {k: norm_manifest(v) if k.endswith(".manifest.json") else v for k, v in objs.items()}


PRUNE_FILES = {"state/skills/alpha/a.txt": b"alpha\n", "state/skills/beta/b.bin": bytes(range(64))}


PRUNE_POINTS = {
    # DeleteObjects #1 removes the manifests; #2, the snapshots' objects, never gets through
    "objects": "hold",
    # #2 is done by the server too; the process dies before the prune row
    "before-row": "hold-after",
}


@pytest.mark.parametrize("point", list(PRUNE_POINTS))
def test_kill_9_mid_prune_apply_then_rerun_equals_a_clean_prune(server, bucket, make_repo, fault_proxy, point):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed(PRUNE_FILES)
    ids = make_dated_snapshots(repo)
    fault_proxy.add(Rule(op="DeleteObjects", fault=PRUNE_POINTS[point], skip=1))
    proc = spawn(repo, "dr.prune", "--keep-last=1", "--apply")
    kill_9_when_parked(proc, fault_proxy, f"DeleteObjects:{PRUNE_POINTS[point]}")

    assert kinds(repo) == ["snapshot"] * 4
    left = live_objects(server, bucket, "snapshots/")
    assert [k for k in left if k.endswith(".manifest.json")] == [f"snapshots/{ids[3]}.manifest.json"]
    if point == "before-row":
        assert all(k.startswith(f"snapshots/{ids[3]}") for k in left)  # nothing of the others is left
    assert_took_over(ok(repo.run("dr.prune", "--keep-last=1", "--apply", "--json")), proc.pid)
    assert kinds(repo) == ["snapshot"] * 4 + ["lock-break", "prune"]
    row = repo.index_rows()[-1]
    assert_no_torn_row(repo)
    assert lock_entries(server, bucket) == []

    clean = twin(make_repo, server, PRUNE_FILES)
    assert make_dated_snapshots(clean) == ids
    done = prune(clean.cfg(), KeepRules(last=1), apply=True)
    assert snapshot_prefix_state(repo) == snapshot_prefix_state(clean)
    assert live_state(repo) == live_state(clean)
    # The re-run records what the killed run deleted (as orphans: their manifests were gone already).
    assert row["deleted"] == [] and row["orphans"] == ids[:3] == sorted(done.row["deleted"])
    assert [r["id"] for r in list_snapshots(repo.cfg()).snapshots] == [ids[3]]


def test_kill_9_mid_recover_apply_then_rerun_equals_a_clean_recover(server, bucket, make_repo, dest_proxy):
    repo = make_repo(server, bucket)
    repo.seed()
    configure_backup(repo, dest_proxy.url)
    ok(repo.run("dr.backup"))
    before, rows = primary_objects(repo), kinds(repo)
    lost = ["state/skills/alpha/a.txt", "state/skills/alpha/b.json", "state/skills/beta/blob.bin"]
    for key in lost:
        server.client().delete_object(Bucket=bucket, Key=key)
    # One object is read from the backup and never answered: the others may land, that one does not.
    dest_proxy.add(Rule(op="GetObject", key="beta/blob.bin", fault="hold"))
    proc = spawn(repo, "dr.recover", "--apply")
    kill_9_when_parked(proc, dest_proxy, "GetObject:hold")
    assert "state/skills/beta/blob.bin" not in primary_objects(repo)
    assert lock_entries(server, bucket) != []

    r = ok(repo.run("dr.recover", "--apply", "--json"))
    assert_took_over(r, proc.pid)
    assert kinds(repo) == [*rows, "lock-break"]
    assert_no_torn_row(repo)
    assert lock_entries(server, bucket) == []
    # What a clean recover makes: every lost key back, byte for byte, nothing else changed.
    assert primary_objects(repo) == before
    assert json.loads(ok(repo.run("dr.recover", "--apply", "--json")).stdout)["copied"] == 0


# ====================================================================== 2. transient faults, retried
def test_restore_retries_503_bursts_500s_and_bodies_cut_mid_stream(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    ts, ts_dt = seed_unit(server, bucket)
    # big.bin: the server's headers and half the body, then a reset, twice: the third read gets it all.
    fault_proxy.add(Rule(op="GetObject", key="big.bin", fault="cut", times=2))
    # one GET refused three times in a row: four attempts for one request
    fault_proxy.add(Rule(op="GetObject", key="c.json", fault=503, times=3))
    fault_proxy.add(Rule(op="GetObject", key="deep/d.md", fault=500, times=2))
    fault_proxy.add(Rule(op="ListObjectVersions", prefix=U, fault=503, times=1))
    r = ok(repo.run("dr.restore", UNIT, ts, "--json"))
    assert dict(fault_proxy.faults) == {
        "GetObject:cut": 2,
        "GetObject:503": 3,
        "GetObject:500": 2,
        "ListObjectVersions:503": 1,
    }
    hold = holding(repo, ts_dt)
    assert local_tree(hold) == unit_tree()
    result = json.loads(r.stdout)
    assert {f["name"]: f["sha256"] for f in result["restored"]} == {
        n: hashlib.sha256(v).hexdigest() for n, v in unit_tree().items()
    }
    assert sorted(p.name for p in (repo.path / "_restore").iterdir()) == [hold.name, f"{hold.name}.json"]


def test_deep_verify_reads_a_body_cut_mid_stream_again(server, bucket, make_repo, fault_proxy):
    # A hiccup on the way is not a damaged snapshot: the read starts over.
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    seed_unit(server, bucket)
    row = json.loads(ok(repo.run("dr.snapshot", "--label=cut", "--json")).stdout)
    fault_proxy.add(Rule(op="GetObject", key="big.bin", fault="cut", times=2))
    d = deep_verify(repo.cfg(), row["id"])
    assert dict(fault_proxy.faults) == {"GetObject:cut": 2}
    assert (d.verified, d.unreadable, d.mismatched) == (len(UNIT_FILES), [], [])
    manifest = json.loads(
        server.client().get_object(Bucket=bucket, Key=f"snapshots/{row['id']}.manifest.json")["Body"].read()
    )
    sha = {o["key"]: o["sha256"] for o in manifest["objects"]}
    assert sha[f"{U}big.bin"] == hashlib.sha256(UNIT_FILES[f"{U}big.bin"]).hexdigest()


def test_rollback_retries_503_bursts_500s_resets_and_a_cut_manifest(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    row, at_snapshot = seeded_with_snapshot(repo)
    damage(repo)
    # The manifest's body breaks off half-way once.
    fault_proxy.add(Rule(op="GetObject", key=".manifest.json", fault="cut", times=1))
    # The one listing of the snapshot dir is reset once.
    fault_proxy.add(Rule(op="ListObjectsV2", prefix=f"snapshots/{row['id']}/", fault="reset", times=1))
    # The copy back of a.txt (the safety snapshot's copy of it comes first, and passes) is refused 3 times running.
    fault_proxy.add(Rule(op="CopyObject", key="state/skills/alpha/a.txt", skip=1, fault=503, times=3))
    fault_proxy.add(Rule(op="DeleteObjects", fault=500, times=1))
    r = ok(repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json"))
    assert dict(fault_proxy.faults) == {
        "GetObject:cut": 1,
        "ListObjectsV2:reset": 1,
        "CopyObject:503": 3,
        "DeleteObjects:500": 1,
    }
    result = json.loads(r.stdout)
    assert (result["copied"], result["deleted"]) == (2, 1)
    assert live_state(repo) == rolled_back(at_snapshot)
    assert kinds(repo) == ["snapshot", "snapshot", "rollback"]
    assert_no_torn_row(repo)


def test_backup_retries_bursts_and_bodies_cut_mid_stream_with_the_right_bytes(
    server, bucket, make_repo, fault_proxy, dest_proxy
):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    seeded_for_backup(repo, 20 * MiB + 7)
    dest = configure_backup(repo, dest_proxy.url)
    # Source: the 20 MiB GET breaks off at 10 MiB, after part 1 (8 MiB) is uploaded: the upload is
    # aborted and the object streamed again from the start. A small GET is cut too (one PutObject).
    fault_proxy.add(Rule(op="GetObject", key=BIG_KEY, fault="cut", times=1))
    fault_proxy.add(Rule(op="GetObject", key="state/skills/alpha/a.txt", fault="cut", times=1))
    fault_proxy.add(Rule(op="GetObject", key="state/skills/alpha/b.json", fault=503, times=3))
    # Destination: one part refused 3 times running, the completion twice, the creation reset once.
    dest_proxy.add(Rule(op="UploadPart", key=BIG_KEY, fault=503, times=3))
    dest_proxy.add(Rule(op="CompleteMultipartUpload", fault=500, times=2))
    dest_proxy.add(Rule(op="CreateMultipartUpload", fault="reset", times=1))
    result = json.loads(ok(repo.run("dr.backup", "--json")).stdout)
    assert not result["partial"] and result["copied"] == result["objects"]
    assert dict(fault_proxy.faults) == {"GetObject:cut": 2, "GetObject:503": 3}
    assert dict(dest_proxy.faults) == {
        "UploadPart:503": 3,
        "CompleteMultipartUpload:500": 2,
        "CreateMultipartUpload:reset": 1,
    }
    assert backup_objects(server, dest) == primary_objects(repo)
    assert open_uploads(server, dest) == []  # the cut-off upload was aborted, not left behind

    # The next run reads the state object, whose body breaks off once; its listing is reset once.
    fault_proxy.clear()
    dest_proxy.clear()
    dest_proxy.add(Rule(op="GetObject", key=STATE_KEY, fault="cut", times=1))
    dest_proxy.add(Rule(op="ListObjectsV2", fault="reset", times=1))
    again = json.loads(ok(repo.run("dr.backup", "--json")).stdout)
    assert dict(dest_proxy.faults) == {"GetObject:cut": 1, "ListObjectsV2:reset": 1}
    assert again["copied"] == 0 and again["skipped"] == result["objects"]
    assert [r["partial"] for r in backup_rows(repo)] == [False, False]


def test_read_timeouts_before_the_headers_and_mid_body_are_retried(server, bucket, make_repo, fault_proxy, dest_proxy):
    """Every operation in turn, with botocore's read timeout cut to 1.5 s in the host's tasks.py."""
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    (repo.path / "tasks.py").write_text(SHORT_TIMEOUT_TASKS)
    env = {"DR_TEST_READ_TIMEOUT": "1.5"}
    files = repo.seed({**SAMPLE_FILES, BIG_KEY: os.urandom(9 * MiB)})  # 2 parts in a backup
    put(server, bucket, INDEX_KEY, b'{"pushed": "before the snapshot"}\n')

    # snapshot: a copy is done by the server but its answer never comes; retried (a second copy, same bytes)
    fault_proxy.add(Rule(op="CopyObject", key="beta/blob.bin", fault="hold-after", hold_seconds=20))
    snap = json.loads(ok(repo.run("dr.snapshot", "--label=good", "--json", env=env)).stdout)
    assert fault_proxy.faults["CopyObject:hold-after"] == 1
    d = f"snapshots/{snap['id']}/"
    got = {k[len(d) :]: v for k, v in live_objects(server, bucket, d).items()}
    assert got == {**files, INDEX_KEY: b'{"pushed": "before the snapshot"}\n'}

    # restore: a body stalls half-way (read timeout mid-body), another GET gets no answer at all
    ts, ts_dt = settled_ts()
    fault_proxy.clear()
    fault_proxy.add(Rule(op="GetObject", key="alpha/a.txt", fault="stall", hold_seconds=20))
    fault_proxy.add(Rule(op="GetObject", key="alpha/b.json", fault="hold", hold_seconds=20))
    ok(repo.run("dr.restore", UNIT, ts, env=env))
    assert fault_proxy.faults["GetObject:stall"] == 1 and fault_proxy.faults["GetObject:hold"] == 1
    want = {k[len(U) :]: v for k, v in files.items() if k.startswith(U)}
    assert local_tree(holding(repo, ts_dt)) == want

    # rollback: the copy back of a.txt gets no answer once
    at_snapshot = {**files, INDEX_KEY: b'{"pushed": "before the snapshot"}\n'}
    damage(repo)
    fault_proxy.clear()
    fault_proxy.add(Rule(op="CopyObject", key="state/skills/alpha/a.txt", skip=1, fault="hold", hold_seconds=20))
    ok(repo.run("dr.rollback", snap["id"], "--apply", "--confirm-label=good", env=env))
    assert fault_proxy.faults["CopyObject:hold"] == 1
    assert live_state(repo) == rolled_back(at_snapshot)

    # backup: a source body stalls half-way; a destination PUT gets no answer once; a multipart
    # upload is completed by the server but the answer is lost, so the completion is sent again
    dest = configure_backup(repo, dest_proxy.url)
    fault_proxy.clear()
    fault_proxy.add(Rule(op="GetObject", key="state/skills/beta/blob.bin", fault="stall", hold_seconds=20))
    dest_proxy.add(Rule(op="PutObject", key="state/notes/readme.txt", fault="hold", hold_seconds=20))
    dest_proxy.add(Rule(op="CompleteMultipartUpload", fault="hold-after", hold_seconds=20))
    result = json.loads(ok(repo.run("dr.backup", "--json", env=env)).stdout)
    assert fault_proxy.faults["GetObject:stall"] == 1 and dest_proxy.faults["PutObject:hold"] == 1
    assert dest_proxy.faults["CompleteMultipartUpload:hold-after"] == 1
    assert not result["partial"]
    assert backup_objects(server, dest) == primary_objects(repo)
    assert kinds(repo) == ["snapshot", "snapshot", "rollback", "cross-region-backup"]


# ====================================================================== 3. faults that outlast the retries
def test_snapshot_gives_up_on_503_forever_naming_key_and_operation_then_converges(
    server, bucket, make_repo, fault_proxy
):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    fault_proxy.add(Rule(op="CopyObject", key="alpha/b.json", fault=503, times=-1))
    r = repo.run("dr.snapshot", "--label=nightly", env=FEW_ATTEMPTS)
    assert_clean_refusal(
        r, "CopyObject s3://", "state/skills/alpha/b.json", "SlowDown (HTTP 503)", "no index row was written"
    )
    assert fault_proxy.faults["CopyObject:503"] == 3  # AWS_MAX_ATTEMPTS is honoured
    assert repo.index_bytes() == b""
    assert live_objects(server, bucket, "snapshots/") == {}  # the copies that worked were removed
    assert lock_entries(server, bucket) == []  # released on the way out: no --break-lock needed

    fault_proxy.clear()
    ok(repo.run("dr.snapshot", "--label=nightly", env=FEW_ATTEMPTS))
    clean = twin(make_repo, server, files)
    take_snapshot(clean.cfg(), "nightly")
    assert snapshot_end_state(repo) == snapshot_end_state(clean)


def test_restore_gives_up_on_503_forever_leaving_nothing_then_converges(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    ts, ts_dt = seed_unit(server, bucket)
    fault_proxy.add(Rule(op="GetObject", key="c.json", fault=503, times=-1))
    r = repo.run("dr.restore", UNIT, ts, env=FEW_ATTEMPTS)
    assert_clean_refusal(r, "GetObject s3://", f"{U}c.json", "SlowDown (HTTP 503)", "nothing was left in _restore/")
    assert fault_proxy.faults["GetObject:503"] == 3
    assert list((repo.path / "_restore").iterdir()) == []

    fault_proxy.clear()
    ok(repo.run("dr.restore", UNIT, ts, env=FEW_ATTEMPTS))
    assert local_tree(holding(repo, ts_dt)) == unit_tree()


def test_rollback_gives_up_on_500_forever_naming_the_operation_then_converges(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    row, at_snapshot = seeded_with_snapshot(repo)
    damage(repo)
    fault_proxy.add(Rule(op="DeleteObjects", fault=500, times=-1))
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", env=FEW_ATTEMPTS)
    assert_clean_refusal(
        r,
        "DeleteObjects s3://",
        "state/skills/alpha/added.txt",
        "InternalError (HTTP 500)",
        "no rollback row was written",
        "run the same command again",
    )
    assert kinds(repo) == ["snapshot", "snapshot"]  # the snapshot and the safety snapshot, no rollback
    # The lease's release is a DeleteObjects too: it fails the same way, says so, and is left to a dead pid.
    assert fault_proxy.faults["DeleteObjects:500"] == 3 + 3
    assert "could not remove the lease" in r.stderr and lock_entries(server, bucket) != []

    fault_proxy.clear()
    args = ("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    pid = lease_pid(server, bucket)
    r = ok(repo.run(*args, "--json", env=FEW_ATTEMPTS))  # the failed run has ended: its lease is taken over
    assert_took_over(r, pid)
    result = json.loads(r.stdout)
    assert live_state(repo) == rolled_back(at_snapshot)
    assert result["deleted"] == 1 and len(result["interrupted_safety_snapshots"]) == 1
    assert kinds(repo)[-1] == "rollback"
    assert_no_torn_row(repo)


def test_backup_gives_up_on_503_forever_with_a_partial_row_then_converges(
    server, bucket, make_repo, fault_proxy, dest_proxy
):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    seeded_for_backup(repo, 64 * 1024)
    dest = configure_backup(repo, dest_proxy.url)
    # the live blob and its snapshot copy: two objects whose GET never succeeds
    fault_proxy.add(Rule(op="GetObject", key="beta/blob.bin", fault=503, times=-1))
    r = repo.run("dr.backup", env=FEW_ATTEMPTS)
    assert_clean_refusal(r, "partial", "GetObject s3://", "state/skills/beta/blob.bin", "SlowDown (HTTP 503)")
    assert fault_proxy.faults["GetObject:503"] == 2 * 3
    (row,) = backup_rows(repo)
    assert row["partial"] is True and row["failed"] == 2 and row["copied"] == row["objects"] - 2
    assert "beta/blob.bin" not in "".join(backup_objects(server, dest))
    assert lock_entries(server, bucket) == []

    fault_proxy.clear()
    again = json.loads(ok(repo.run("dr.backup", "--json", env=FEW_ATTEMPTS)).stdout)
    assert again["copied"] == 2 and again["skipped"] == row["objects"] - 2
    assert backup_objects(server, dest) == primary_objects(repo)
    assert [r["partial"] for r in backup_rows(repo)] == [True, False]
    assert_no_torn_row(repo)


def test_a_bad_aws_max_attempts_is_one_line_and_sends_nothing(moto_server, make_repo, fault_proxy_moto):
    repo = make_repo(moto_server, new_bucket(moto_server), endpoint_url=fault_proxy_moto.url)
    r = repo.run("dr.snapshot", "--label=x", env={"AWS_MAX_ATTEMPTS": "lots"})
    assert_clean_refusal(r, "AWS_MAX_ATTEMPTS='lots' is not a whole number")
    assert sum(fault_proxy_moto.counts.values()) == 0
