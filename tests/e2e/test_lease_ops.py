"""Every writer holds the lease, whoever calls it: the tasks, and the Python API by default (issue 16, items 4, 6, 7).

A caller that already holds the lease passes the `Lease` it holds; nobody
else needs to know about it. Readers stay lease-free. A run that finds its
lease gone (taken over after it expired) stops before its next write and its
commit row, and says what it left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from dr_tasks import (
    KeepRules,
    LockHeld,
    apply_rollback,
    hold_lease,
    prune,
    read_lease,
    recover_from_backup,
    run_backup,
    take_snapshot,
)
from dr_tasks.lease import LOCK_KEY
from dr_tasks.ops.leasing import TTL_ENV
from tests.conftest import SAMPLE_FILES, HostRepo, Server, assert_clean_refusal, bucket_state
from tests.e2e.test_backup import configure_backup
from tests.support.faultproxy import FaultProxy, Rule


def plant_live_lease(server: Server, bucket: str) -> str:
    """Another operator's live lease (their process runs elsewhere); returns its version id."""
    body = {
        "v": 1,
        "tool": "dr-tasks",
        "token": "other-operator",
        "owner": "other",
        "host": "elsewhere",
        "pid": 4242,
        "operation": "prune",
        "started": "2026-01-01T00:00:00Z",
        "ttl_seconds": 600,
    }
    return server.client().put_object(Bucket=bucket, Key=LOCK_KEY, Body=json.dumps(body).encode()).get("VersionId")


def lock_entries(server: Server, bucket: str) -> list[tuple[str, str, str, bool]]:
    return [e for e in bucket_state(server, bucket) if e[0] == LOCK_KEY]


# ---------------------------------------------------------------------- item 7: the Python API
def _snapshot(repo: HostRepo) -> Any:
    return take_snapshot(repo.cfg(), "api")


def _rollback(repo: HostRepo) -> Any:
    return apply_rollback(repo.cfg(), repo.index_rows()[0]["id"], "base")


def _prune(repo: HostRepo) -> Any:
    return prune(repo.cfg(), KeepRules(last=1), apply=True)


def _backup(repo: HostRepo) -> Any:
    return run_backup(repo.cfg())


def _recover(repo: HostRepo) -> Any:
    return recover_from_backup(repo.cfg(), apply=True, overwrite=True)


API_WRITERS: dict[str, Callable[[HostRepo], Any]] = {
    "take_snapshot": _snapshot,
    "apply_rollback": _rollback,
    "prune": _prune,
    "run_backup": _backup,
    "recover_from_backup": _recover,
}


@pytest.mark.parametrize("writer", sorted(API_WRITERS))
def test_python_api_writers_take_the_lease_themselves(server, bucket, make_repo, moto2, writer):
    repo = make_repo(server, bucket)
    repo.seed()
    configure_backup(repo, moto2)
    take_snapshot(repo.cfg(), "base")
    take_snapshot(repo.cfg(), "second")
    run_backup(repo.cfg())
    # something for every writer to do: changed live, and a key the backup lacks
    server.client().put_object(Bucket=bucket, Key="state/notes/readme.txt", Body=b"changed")
    if writer == "recover_from_backup":
        server.client().delete_object(Bucket=bucket, Key="state/notes/readme.txt")
    index_before = repo.index_bytes()
    other = plant_live_lease(server, bucket)
    before = bucket_state(server, bucket)
    with pytest.raises(LockHeld) as info:
        API_WRITERS[writer](repo)
    assert "lease held by other@elsewhere" in info.value.message
    assert bucket_state(server, bucket) == before
    assert repo.index_bytes() == index_before
    # once the other operator is done, the same call runs, and leaves no lease behind
    server.client().delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=other)
    API_WRITERS[writer](repo)
    assert lock_entries(server, bucket) == []


def test_a_caller_holding_the_lease_passes_it_and_the_operation_uses_it(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    cfg = repo.cfg()
    seen: list[Any] = []

    def during() -> None:
        seen.append(read_lease(cfg))

    with hold_lease(cfg, operation="script") as lease:
        snap = take_snapshot(cfg, "held", lease=lease)
        during()
        result = apply_rollback(cfg, snap.id, "held", lease=lease)
        during()
    assert result.safety_snapshot
    assert [h.operation for h in seen] == ["script", "script"]
    assert lock_entries(server, bucket) == []


def test_a_passed_lease_of_another_bucket_is_refused(server, bucket, make_repo):
    from tests.conftest import new_bucket

    repo = make_repo(server, bucket)
    repo.seed()
    other = make_repo(server, new_bucket(server))
    before = bucket_state(server, bucket)
    with hold_lease(other.cfg(), operation="script") as lease, pytest.raises(Exception) as info:
        take_snapshot(repo.cfg(), "wrong", lease=lease)
    assert f"is for s3://{other.bucket}, not s3://{bucket}" in str(info.value)
    assert bucket_state(server, bucket) == before
    assert repo.index_bytes() == b""


# ---------------------------------------------------------------------- item 6: pin, reindex --apply, verify --deep
def test_pin_and_reindex_apply_are_refused_while_another_operation_holds_the_lease(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    assert repo.run("dr.snapshot", "--label=base").returncode == 0
    snap = repo.index_rows()[0]["id"]
    repo.index_path.write_bytes(b"")  # a lost index: reindex has a row to append
    other = plant_live_lease(server, bucket)
    before = bucket_state(server, bucket)
    for args in (("dr.pin", snap), ("dr.reindex", "--apply")):
        r = repo.run(*args)
        assert_clean_refusal(r, "another dr operation is running: lease held by other@elsewhere")
        assert repo.index_bytes() == b"", args
        assert bucket_state(server, bucket) == before, args
    # readers stay lease-free
    r = repo.run("dr.reindex")
    assert r.returncode == 0 and "1 missing" in r.stdout, r.stderr
    # once the other operation is done, both write, and release the lease
    server.client().delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=other)
    assert repo.run("dr.reindex", "--apply").returncode == 0
    assert repo.run("dr.pin", snap).returncode == 0
    assert [r["kind"] for r in repo.index_rows()] == ["snapshot", "pin"]
    assert lock_entries(server, bucket) == []


def test_verify_deep_records_sha256_only_under_the_lease(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    assert repo.run("dr.snapshot", "--label=base").returncode == 0
    other = plant_live_lease(server, bucket)
    before = bucket_state(server, bucket)
    r = repo.run("dr.verify", "--deep", "--json")
    # the bytes are checked (a reader needs no lease); the manifest is not rewritten under another's lease.
    # (The scratch repo has no lifecycle rule and no backup: those checks fail, exit 1, whatever the lease.)
    assert "Traceback" not in r.stderr
    out = json.loads(r.stdout)
    assert [c["ok"] for c in out["checks"] if c["name"] == "deep"] == [True], out
    deep = out["deep"]
    assert deep["verified"] == len(SAMPLE_FILES) and deep["manifest_rewritten"] is False
    assert "not recorded" in deep["not_recorded"] and "other@elsewhere" in deep["not_recorded"]
    assert bucket_state(server, bucket) == before
    server.client().delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=other)
    r = repo.run("dr.verify", "--deep", "--json")
    assert json.loads(r.stdout)["deep"]["recorded"] == len(SAMPLE_FILES), r.stderr
    assert lock_entries(server, bucket) == []


# ---------------------------------------------------------------------- item 4: a lost lease stops the writes
def _asleep_at(repo: HostRepo, fault_proxy: FaultProxy, rule: Rule, *args: str) -> subprocess.Popen[str]:
    """Start `inv <args>` with a 2 s lease and SIGSTOP it once `rule` fires (its request parked or slowed):
    a laptop asleep mid-operation. Returns once its lease has expired on the server's clock."""
    fault_proxy.add(rule)
    p = repo.spawn(*args, env={TTL_ENV: "2"})
    deadline = time.monotonic() + 60
    while rule.fired == 0 and time.monotonic() < deadline:
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    assert rule.fired, f"{args} never sent the request to stop it at"
    os.kill(p.pid, signal.SIGSTOP)
    time.sleep(3.5)  # past the ttl
    return p


def _taken_over_then_woken(p: subprocess.Popen[str], fault_proxy: FaultProxy, other: HostRepo) -> tuple[int, str, str]:
    """Another operator (reaching the bucket as `other` does) takes the expired lease over; then the stopped run
    wakes up and ends under it. Returns its exit code, its stderr, and the operation the takeover found.

    Whatever the run did on waking, its release must leave the other operator's lease in place."""
    try:
        with hold_lease(other.cfg(), operation="other", break_lock=True) as lease:
            assert lease.broke is not None
            fault_proxy.clear()  # the parked requests are reset; the client retries them and they go through
            os.kill(p.pid, signal.SIGCONT)
            _, err = p.communicate(timeout=120)
            holder = read_lease(other.cfg())
            assert holder is not None and holder.token == lease.token, err
            return p.returncode, err, lease.broke.operation
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()


def test_a_snapshot_that_lost_its_lease_stops_before_its_manifest_and_row(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    rule = Rule(op="CopyObject", key="-asleep/", fault="hold", times=-1)
    p = _asleep_at(repo, fault_proxy, rule, "dr.snapshot", "--label=asleep")
    code, err, broke = _taken_over_then_woken(p, fault_proxy, repo)
    assert broke == "snapshot"
    assert code == 1 and "Traceback" not in err, err
    assert "lease lost; nothing more written" in err and "taken over by" in err, err
    assert f"{len(files)} copies are left under s3://{bucket}/snapshots/" in err, err
    assert "no manifest and no index row" in err, err
    assert [r["kind"] for r in repo.index_rows()] == ["lock-break"]  # no snapshot row
    keys = {e[0] for e in bucket_state(server, bucket)}
    assert not any(k.endswith(".manifest.json") for k in keys), keys
    assert lock_entries(server, bucket) == []


def test_a_rollback_that_lost_its_lease_stops_before_its_deletes_and_row(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    assert repo.run("dr.snapshot", "--label=base").returncode == 0
    snap = repo.index_rows()[0]["id"]
    c = server.client()
    c.put_object(Bucket=bucket, Key="state/notes/readme.txt", Body=b"changed")
    c.put_object(Bucket=bucket, Key="state/notes/extra.txt", Body=b"not in the snapshot")
    # park the copy back, not the safety snapshot's copy of the same key (the first match)
    rule = Rule(op="CopyObject", key="state/notes/readme.txt", fault="hold", times=-1, skip=1)
    p = _asleep_at(repo, fault_proxy, rule, "dr.rollback", snap, "--apply", "--confirm-label=base")
    code, err, broke = _taken_over_then_woken(p, fault_proxy, repo)
    assert broke == "rollback"
    assert code == 1 and "Traceback" not in err, err
    assert "lease lost; nothing more written" in err and "live is partly rolled back" in err, err
    assert "none of 1 deletes done" in err and "undo with `" in err, err
    kinds = [r["kind"] for r in repo.index_rows()]
    assert kinds == ["snapshot", "snapshot", "lock-break"], kinds  # the base, the safety snapshot; no rollback row
    # the delete phase never ran
    assert c.get_object(Bucket=bucket, Key="state/notes/extra.txt")["Body"].read() == b"not in the snapshot"
    assert lock_entries(server, bucket) == []


def test_a_prune_that_lost_its_lease_stops_before_the_snapshot_objects_and_its_row(
    server, bucket, make_repo, fault_proxy
):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    for label in ("one", "two"):
        assert repo.run("dr.snapshot", f"--label={label}").returncode == 0
        time.sleep(1.1)  # distinct ids
    old = repo.index_rows()[0]["id"]
    # park the first delete: the pruned snapshot's manifest
    rule = Rule(op="DeleteObjects", key=None, fault="hold", times=-1)
    p = _asleep_at(repo, fault_proxy, rule, "dr.prune", "--keep-last=1", "--apply")
    # the other operator talks to the server directly: its break (a DeleteObjects) is not parked
    other = make_repo(server, bucket)
    code, err, broke = _taken_over_then_woken(p, fault_proxy, other)
    assert broke == "prune"
    assert code == 1 and "Traceback" not in err, err
    assert "lease lost; nothing more written" in err and "their objects are left and no prune row" in err, err
    assert [r["kind"] for r in repo.index_rows()] == ["snapshot", "snapshot"]  # no prune row
    assert [r["kind"] for r in other.index_rows()] == ["lock-break"]
    left = [e[0] for e in bucket_state(server, bucket) if e[0].startswith(f"snapshots/{old}/") and e[2] != "DM"]
    assert len(left) == len(SAMPLE_FILES), left  # the snapshot's objects were not deleted
    assert lock_entries(server, bucket) == []


def test_a_backup_that_lost_its_lease_writes_no_state_and_no_row(server, bucket, make_repo, fault_proxy, moto2):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    dest = configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0  # the first run: the backup prefix is this primary's now
    rows = repo.index_rows()
    state_before = [e for e in bucket_state(moto2, dest) if e[0].endswith("backup-state.json")]
    server.client().put_object(Bucket=bucket, Key="state/notes/readme.txt", Body=b"changed")
    # slow reads of one primary object: the backup is mid-copy, under its lease, when it is put to sleep
    rule = Rule(op="GetObject", key="state/notes/readme.txt", fault=None, delay=8, times=-1)
    p = _asleep_at(repo, fault_proxy, rule, "dr.backup")
    code, err, broke = _taken_over_then_woken(p, fault_proxy, make_repo(server, bucket))
    assert broke == "backup"
    assert code == 1 and "Traceback" not in err, err
    assert "lease lost; nothing more written" in err and "no backup row was written" in err, err
    assert repo.index_rows() == rows  # no new backup row
    # no backup state written: it still records the first run
    assert [e for e in bucket_state(moto2, dest) if e[0].endswith("backup-state.json")] == state_before
    assert lock_entries(server, bucket) == []


def test_ensure_costs_no_request_while_the_last_renewal_is_fresh_and_renews_when_it_is_not(
    server, bucket, make_repo, monkeypatch, fault_proxy
):
    from dr_tasks.lease import LeaseLost
    from dr_tasks.lease import model as lock_mod

    cfg = make_repo(server, bucket, endpoint_url=fault_proxy.url).cfg()

    def requests() -> dict[str, int]:
        return dict(fault_proxy.counts)

    with hold_lease(cfg, operation="long") as lease:
        before = requests()
        lease.ensure("x")
        assert requests() == before
        # asleep for 400 s of a 600 s ttl: the renewer may have missed its turn, so ensure renews (one PUT)
        monkeypatch.setattr(lock_mod, "_monotonic", lambda real=lock_mod._monotonic: real() + 400)
        monkeypatch.setattr(lock_mod, "_wall_clock", lambda real=lock_mod._wall_clock: real() + 400)
        lease.ensure("x")
        after = requests()
        assert after.get("PutObject", 0) == before.get("PutObject", 0) + 1 and not lease.lost, (before, after)
        lease.ensure("x")  # renewed just now: fresh again
        assert requests() == after
        # someone took it over meanwhile (our versions gone, theirs in place): the next stale check finds out
        c = server.client()
        ghost = plant_live_lease(server, bucket)
        for _, vid, _, _ in lock_entries(server, bucket):
            if vid != ghost:
                c.delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=vid)
        monkeypatch.setattr(lock_mod, "_monotonic", lambda real=lock_mod._monotonic: real() + 400)
        monkeypatch.setattr(lock_mod, "_wall_clock", lambda real=lock_mod._wall_clock: real() + 400)
        with pytest.raises(LeaseLost) as info:
            lease.ensure("the test left nothing")
        assert str(info.value).startswith("lease lost; nothing more written: it was taken over by other@elsewhere")
        assert "the test left nothing" in str(info.value)
    assert [e[1] for e in lock_entries(server, bucket)] == [ghost]
