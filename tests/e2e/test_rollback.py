"""`inv dr.rollback` end to end: a real `inv` subprocess against real S3 servers over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from dr_tasks import apply_rollback, hold_lease, plan_rollback, take_snapshot
from dr_tasks.transport import count_requests
from tests.conftest import (
    INV,
    SAMPLE_FILES,
    HostRepo,
    assert_clean_refusal,
    bucket_state,
    live_objects,
    local_tree,
    new_bucket,
)
from tests.support.faultproxy import Rule

INDEX_KEY = "state/log/snapshots.ndjson"


# ---------------------------------------------------------------------- helpers


def live_state(repo: HostRepo) -> dict[str, bytes]:
    """Live keys (snapshots and bookkeeping excluded) relative to the prefix, with their bytes."""
    prefix = repo.config.get("prefix", "")
    snap = repo.config.get("snapshot_prefix", "snapshots/")
    return {
        k[len(prefix) :]: v
        for k, v in live_objects(repo.server, repo.bucket, prefix).items()
        if not k.startswith((snap, ".dr-tasks/"))
    }


def snapshot_state(repo: HostRepo, snap_id: str) -> dict[str, bytes]:
    prefix = f"{repo.config.get('snapshot_prefix', 'snapshots/')}{snap_id}/"
    return {k[len(prefix) :]: v for k, v in live_objects(repo.server, repo.bucket, prefix).items()}


def put(repo: HostRepo, rel: str, data: bytes) -> None:
    repo.server.client().put_object(Bucket=repo.bucket, Key=repo.config.get("prefix", "") + rel, Body=data)


def delete(repo: HostRepo, rel: str) -> None:
    repo.server.client().delete_object(Bucket=repo.bucket, Key=repo.config.get("prefix", "") + rel)


def snapshot(repo: HostRepo, label: str) -> dict[str, Any]:
    r = repo.run("dr.snapshot", f"--label={label}", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def seeded_with_snapshot(repo: HostRepo, label: str = "good") -> tuple[dict[str, Any], dict[str, bytes]]:
    """Sample files plus a pushed copy of the index live, then a snapshot of that."""
    repo.seed()
    put(repo, INDEX_KEY, b'{"pushed": "before the snapshot"}\n')
    row = snapshot(repo, label)
    return row, live_state(repo)


def damage(repo: HostRepo) -> None:
    """A bad change: one key modified, one deleted, two added, and the pushed index moved on."""
    put(repo, "state/skills/alpha/a.txt", b"a bad edit\n")
    delete(repo, "state/skills/alpha/b.json")
    put(repo, "state/skills/alpha/added.txt", b"added after the snapshot\n")
    put(repo, "state/skills/gamma/new-unit.md", b"# a unit that did not exist\n")
    put(repo, INDEX_KEY, b'{"pushed": "after the snapshot"}\n')


def popen(repo: HostRepo, *args: str) -> subprocess.Popen[str]:
    """`inv` started the way `repo.run` starts it, but not waited for."""
    return repo.spawn(*args)


# ---------------------------------------------------------------------- plan
def test_without_apply_prints_the_plan_and_refuses_with_the_command(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    row, _ = seeded_with_snapshot(repo)
    damage(repo)
    before = (repo.index_bytes(), bucket_state(server, bucket), local_tree(repo.path))

    r = repo.run("dr.rollback", row["id"])
    assert_clean_refusal(r, "not applied", "nothing was changed")
    assert f"inv dr.rollback {row['id']} --apply --confirm-label=good" in r.stderr
    out = r.stdout
    assert f"snapshot {row['id']}" in out and "'good'" in out
    assert "copy back       2  (1 changed, 1 missing;" in out
    assert "state/skills/alpha/a.txt  (changed)" in out
    assert "state/skills/alpha/b.json  (missing)" in out
    assert "delete          2  (delete markers; versioned bucket)" in out
    assert "state/skills/alpha/added.txt  (not in snapshot)" in out
    assert "unchanged       3" in out
    assert "preserved       1" in out and INDEX_KEY in out

    j = repo.run("dr.rollback", row["id"], "--json")
    assert_clean_refusal(j, "not applied")
    plan = json.loads(j.stdout)
    assert plan["counts"] == {"copy": 2, "delete": 2, "unchanged": 3, "preserved": 1}
    assert [i["key"] for i in plan["delete"]] == ["state/skills/alpha/added.txt", "state/skills/gamma/new-unit.md"]
    assert plan["apply_command"] == f"inv dr.rollback {row['id']} --apply --confirm-label=good"
    assert (repo.index_bytes(), bucket_state(server, bucket), local_tree(repo.path)) == before


def test_the_index_stays_preserved_when_preserve_lists_something_else(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    row, _ = seeded_with_snapshot(repo)
    damage(repo)
    repo.write_config(preserve=["state/skills/beta/**"])
    j = repo.run("dr.rollback", row["id"], "--json")
    assert_clean_refusal(j, "not applied")
    plan = json.loads(j.stdout)
    # An old index copied back would drop the rows written since the snapshot.
    assert INDEX_KEY in [i["key"] for i in plan["preserved"]]
    assert all(i["key"] != INDEX_KEY for i in plan["copy"] + plan["delete"])


def test_plan_caps_names_and_json_lists_them_all(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    row, _ = seeded_with_snapshot(repo)
    for i in range(25):
        put(repo, f"state/skills/junk/{i:02d}.txt", b"junk")
    r = repo.run("dr.rollback", row["id"])
    assert_clean_refusal(r, "25 to delete")
    assert "state/skills/junk/09.txt" in r.stdout and "state/skills/junk/10.txt" not in r.stdout
    assert "... and 15 more (--json lists all)" in r.stdout
    plan = json.loads(repo.run("dr.rollback", row["id"], "--json").stdout)
    assert len(plan["delete"]) == 25 and len(plan["unchanged"]) == len(SAMPLE_FILES)


def test_the_dr_program_prints_its_own_command(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    row, _ = seeded_with_snapshot(repo)
    put(repo, "state/skills/alpha/a.txt", b"changed")
    r = repo.dr("rollback", row["id"])
    assert_clean_refusal(r, f"to apply it, run: dr rollback {row['id']} --apply --confirm-label=good")
    r = repo.dr("rollback", row["id"], "--apply", "--confirm-label=good")
    assert r.returncode == 0, r.stderr
    assert "undo with: dr rollback " in r.stdout
    assert live_state(repo)["state/skills/alpha/a.txt"] == SAMPLE_FILES["state/skills/alpha/a.txt"]


# ---------------------------------------------------------------------- friction
@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("goo", "'goo'"),  # one byte short
        ("goodd", "'goodd'"),  # one byte more
        ("gooe", "'gooe'"),  # one byte off
        ("Good", "'Good'"),  # case
        ("good ", "'good '"),  # trailing space
        (" good", "' good'"),  # leading space
        ("", "''"),  # empty
    ],
)
def test_confirm_label_must_match_byte_for_byte(moto_server, make_repo, fault_proxy_moto, given, shown):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    row, _ = seeded_with_snapshot(repo)
    damage(repo)
    repo.write_config(endpoint_url=fault_proxy_moto.url)
    before = (repo.index_bytes(), bucket_state(moto_server, bucket))
    r = repo.run("dr.rollback", row["id"], "--apply", f"--confirm-label={given}")
    assert_clean_refusal(r, f"--confirm-label {shown} does not match", "label 'good'", "byte for byte")
    assert "nothing was changed" in r.stderr
    assert (repo.index_bytes(), bucket_state(moto_server, bucket)) == before
    # refused before a single request
    assert sum(fault_proxy_moto.counts.values()) == 0


def test_apply_without_confirm_label_is_refused(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    row, _ = seeded_with_snapshot(repo)
    damage(repo)
    before = (repo.index_bytes(), bucket_state(server, bucket))
    r = repo.run("dr.rollback", row["id"], "--apply")
    assert_clean_refusal(r, "--apply needs --confirm-label", "labelled 'good'", "no --confirm-label was given")
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before


def test_unknown_id_lists_the_nearest(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    row, _ = seeded_with_snapshot(repo)
    before = (repo.index_bytes(), bucket_state(moto_server, bucket))
    for extra in ((), ("--apply", "--confirm-label=good")):
        r = repo.run("dr.rollback", row["id"][:-1] + "x", *extra)
        assert_clean_refusal(r, "unknown snapshot id", f"nearest: {row['id']}")
    assert (repo.index_bytes(), bucket_state(moto_server, bucket)) == before


def test_pre_hook_failure_changes_nothing(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    row, _ = seeded_with_snapshot(repo)
    damage(repo)
    repo.write_config(hooks={"pre_rollback": ["exit 4"]})
    before = (repo.index_bytes(), bucket_state(moto_server, bucket))
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert_clean_refusal(r, "hook pre_rollback 'exit 4' exited 4")
    assert (repo.index_bytes(), bucket_state(moto_server, bucket)) == before


# ---------------------------------------------------------------------- the snapshot is checked first
def test_snapshot_with_a_missing_or_altered_object_is_refused(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    row, _ = seeded_with_snapshot(repo)
    damage(repo)
    c = server.client()
    snap_dir = f"snapshots/{row['id']}/"
    c.delete_object(Bucket=bucket, Key=snap_dir + "state/skills/alpha/deep/c.md")
    # same size, other bytes: only the ETag tells
    c.put_object(
        Bucket=bucket, Key=snap_dir + "state/notes/readme.txt", Body=b"X" * len(SAMPLE_FILES["state/notes/readme.txt"])
    )
    before = (repo.index_bytes(), bucket_state(server, bucket))
    for extra in ((), ("--apply", "--confirm-label=good")):
        r = repo.run("dr.rollback", row["id"], *extra)
        assert_clean_refusal(
            r,
            f"snapshot {row['id']} is incomplete: 2 of 6 objects",
            "state/skills/alpha/deep/c.md (missing)",
            "state/notes/readme.txt (ETag",
            "nothing was changed",
        )
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before


# ---------------------------------------------------------------------- apply
def test_apply_makes_live_equal_to_the_snapshot_and_the_undo_brings_it_back(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    row, at_snapshot = seeded_with_snapshot(repo)
    damage(repo)
    before_rollback = live_state(repo)
    local_before = local_tree(repo.path)
    index_before = repo.index_bytes()

    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["copied"], result["deleted"], result["unchanged"], result["preserved"]) == (2, 2, 3, 1)

    # live is the snapshot byte for byte, except the preserved index, which kept its newer content
    after = live_state(repo)
    assert after.pop(INDEX_KEY) == before_rollback[INDEX_KEY]
    expected = dict(at_snapshot)
    expected.pop(INDEX_KEY)
    assert after == expected
    # the deleted keys got delete markers: their history is still there
    versions = server.client().list_object_versions(Bucket=bucket, Prefix="state/skills/alpha/added.txt")
    assert versions["DeleteMarkers"][0]["IsLatest"] and len(versions["Versions"]) == 1

    # the index kept every row and gained two: the safety snapshot, then the rollback
    index_after = repo.index_bytes()
    assert index_after.startswith(index_before)
    rows = repo.index_rows()
    assert [x["kind"] for x in rows] == ["snapshot", "snapshot", "rollback"]
    safety, rb = rows[1], rows[2]
    assert safety["label"] == "pre-rollback-good"
    assert rb == {k: result[k] for k in rb}
    assert rb["snapshot"] == row["id"] and rb["safety_snapshot"] == safety["id"] and rb["label"] == "good"
    assert (rb["copied"], rb["deleted"]) == (2, 2)
    # the safety snapshot is live exactly as it was before the rollback
    assert snapshot_state(repo, safety["id"]) == before_rollback
    # rollback never touches the local copy (a post_rollback hook does that)
    assert local_tree(repo.path) == {**local_before, INDEX_KEY: index_after}

    # a second plan sees nothing left to do
    again = repo.run("dr.rollback", row["id"], "--json")
    assert json.loads(again.stdout)["counts"] == {"copy": 0, "delete": 0, "unchanged": 5, "preserved": 1}

    # roll the rollback back, with the command it printed
    assert result["undo_command"] == f"inv dr.rollback {safety['id']} --apply --confirm-label=pre-rollback-good"
    undo = repo.run("dr.rollback", safety["id"], "--apply", "--confirm-label=pre-rollback-good")
    assert undo.returncode == 0, undo.stderr
    assert "rolled back to" in undo.stdout and "undo with: inv dr.rollback" in undo.stdout
    assert live_state(repo) == before_rollback
    rows = repo.index_rows()
    assert [x["kind"] for x in rows] == ["snapshot", "snapshot", "rollback", "snapshot", "rollback"]
    assert rows[3]["label"] == "pre-rollback-pre-rollback-good"
    assert snapshot_state(repo, rows[3]["id"]) == {**expected, INDEX_KEY: before_rollback[INDEX_KEY]}
    assert rows[4]["snapshot"] == safety["id"] and rows[4]["safety_snapshot"] == rows[3]["id"]
    assert repo.index_bytes().startswith(index_after)
    # `dr.show` ties them together
    shown = json.loads(repo.run("dr.show", row["id"], "--json").stdout)
    assert [x["id"] for x in shown["rollbacks"]] == [rb["id"]]


def test_unversioned_bucket_needs_allow_unversioned_and_says_so_loudly(server, make_repo):
    bucket = new_bucket(server, versioned=False)
    repo = make_repo(server, bucket)
    row, at_snapshot = seeded_with_snapshot(repo)
    damage(repo)
    before = (repo.index_bytes(), bucket_state(server, bucket))
    plan = repo.run("dr.rollback", row["id"])
    assert_clean_refusal(plan, "THE BUCKET IS NOT VERSIONED", "--allow-unversioned")
    assert "PERMANENT" in plan.stdout
    assert "--confirm-label=good --allow-unversioned" in plan.stderr
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert_clean_refusal(r, "THE BUCKET IS NOT VERSIONED", "2 deletes and 1 overwrites would be permanent")
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before

    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--allow-unversioned")
    assert r.returncode == 0, r.stderr
    assert "PERMANENT" in r.stderr
    after = live_state(repo)
    assert {k: v for k, v in after.items() if k != INDEX_KEY} == {
        k: v for k, v in at_snapshot.items() if k != INDEX_KEY
    }
    assert "--allow-unversioned" in r.stdout  # the undo command needs it too


def test_a_failed_copy_writes_no_row_and_a_rerun_converges(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    row, at_snapshot = seeded_with_snapshot(repo)
    damage(repo)
    # b.json is gone from live, so only the rollback's copy back matches (not the safety snapshot's)
    fault_proxy.add(Rule(op="CopyObject", key="alpha/b.json", fault=403, times=-1))
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert_clean_refusal(r, "state/skills/alpha/b.json", "AccessDenied", "no rollback row was written")
    rows = repo.index_rows()
    assert [x["kind"] for x in rows] == ["snapshot", "snapshot"]
    first_safety = rows[1]["id"]
    assert f"safety snapshot {first_safety} holds live as it was before" in r.stderr
    assert "run the same command again" in r.stderr

    fault_proxy.clear()
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["copied"], result["deleted"]) == (1, 0)  # only what the first attempt left
    assert result["interrupted_safety_snapshots"] == [first_safety]
    after = live_state(repo)
    after.pop(INDEX_KEY)
    assert after == {k: v for k, v in at_snapshot.items() if k != INDEX_KEY}


def test_kill_9_mid_rollback_leaves_no_row_and_the_rerun_converges(server, bucket, make_repo, fault_proxy):
    # A prefix, so the proxy can slow the rollback's copies (to live/...) and not the
    # safety snapshot's (to snapshots/<id>/state/...).
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url, prefix="live/", concurrency=1)
    repo.write_config(preserve=[INDEX_KEY])
    row, at_snapshot = seeded_with_snapshot(repo)
    for rel in list(SAMPLE_FILES)[:4]:
        put(repo, rel, b"overwritten by a bad change\n")
    put(repo, "state/skills/alpha/added.txt", b"added\n")
    before_rollback = live_state(repo)
    slow = fault_proxy.add(Rule(op="CopyObject", key="live/state/", fault=None, times=-1, delay=1.0))

    proc = popen(repo, "dr.rollback", row["id"], "--apply", "--confirm-label=good")
    deadline = time.monotonic() + 60
    while slow.matched < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert slow.matched >= 2 and proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(1.5)  # let the proxy finish the copy it was holding

    rows = repo.index_rows()
    assert [x["kind"] for x in rows] == ["snapshot", "snapshot"]  # the safety snapshot, and no rollback row
    first_safety = rows[1]["id"]
    assert snapshot_state(repo, first_safety) == before_rollback
    half = live_state(repo)
    assert half != before_rollback and "state/skills/alpha/added.txt" in half  # part-way: copies done, no deletes

    fault_proxy.clear()
    # The killed run left its lease; it is provably not running on this machine, so the plain re-run
    # takes it over and says so in one line (and logs it below).
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json")
    assert r.returncode == 0, r.stderr
    took = [line for line in r.stderr.splitlines() if "took over the lease" in line]
    assert len(took) == 1 and f"pid {proc.pid} for rollback" in took[0] and "is not running on this machine" in took[0]
    result = json.loads(r.stdout)
    assert live_state(repo) == {**at_snapshot, INDEX_KEY: before_rollback[INDEX_KEY]}
    assert result["deleted"] == 1 and result["copied"] < 4
    assert result["interrupted_safety_snapshots"] == [first_safety]
    assert "did not finish" in r.stderr and first_safety in r.stderr
    rows = repo.index_rows()
    assert [x["kind"] for x in rows].count("lock-break") == 1
    rows = [x for x in rows if x["kind"] != "lock-break"]
    assert [x["kind"] for x in rows] == ["snapshot", "snapshot", "snapshot", "rollback"]
    assert rows[3]["safety_snapshot"] == rows[2]["id"] != first_safety
    assert snapshot_state(repo, rows[2]["id"]) == half


# ---------------------------------------------------------------------- requests
def test_requests_are_one_listing_per_side_and_no_per_object_head(server, make_repo):
    bucket = new_bucket(server)
    repo = make_repo(server, bucket)
    c = server.client()
    keys = [f"state/skills/u{i % 5}/k{i:03d}.txt" for i in range(120)]
    for k in keys:
        c.put_object(Bucket=bucket, Key=k, Body=k.encode())
    cfg = repo.cfg()
    snap = take_snapshot(cfg, "counted")
    for k in keys[:10]:
        c.put_object(Bucket=bucket, Key=k, Body=b"changed")
    for k in keys[10:15]:
        c.delete_object(Bucket=bucket, Key=k)
    for i in range(7):
        c.put_object(Bucket=bucket, Key=f"state/skills/extra/{i}.txt", Body=b"extra")

    with count_requests() as counts:
        plan = plan_rollback(cfg, snap.id)
    assert (len(plan.copy), len(plan.delete), len(plan.unchanged)) == (15, 7, 105)
    assert dict(counts) == {"GetBucketVersioning": 1, "GetObject": 1, "ListObjectsV2": 1, "ListObjectVersions": 1}

    # The rollback's own requests: the caller holds the lease, taken before counting.
    with hold_lease(cfg, operation="count") as lease, count_requests() as counts:
        result = apply_rollback(cfg, snap.id, "counted", lease=lease)
    assert (result.copied, result.deleted) == (15, 7)
    live_now = 120 - 5 + 7
    assert counts["CopyObject"] == live_now + 15  # the safety snapshot, then the copies back
    assert counts["HeadObject"] <= 1  # the safety manifest's exists check, never per object
    assert counts["GetObject"] == 1  # the manifest
    assert counts["ListObjectsV2"] == 1  # the snapshot dir
    assert counts["ListObjectVersions"] == 2  # live for the plan, live for the safety snapshot
    assert counts["DeleteObjects"] == 1
    others = sum(counts.values()) - counts["CopyObject"]
    assert others <= 9, counts


# ---------------------------------------------------------------------- hooks
SYNC_TASKS = '''
import os
from pathlib import Path

import boto3
from botocore.config import Config
from invoke import Collection, task
from dr_tasks import dr

SKIP = {"state/log/snapshots.ndjson"}  # the index is appended locally, never pulled over


@task
def pull(c):
    """Make local state/ what the bucket's live keys say (a stand-in for a real sync)."""
    cfg = c.config.dr
    s3 = boto3.client("s3", endpoint_url=cfg.endpoint_url,
                      config=Config(s3={"addressing_style": "path"}))
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cfg.bucket, Prefix="state/"):
        for o in page.get("Contents", []):
            keys.add(o["Key"])
    keys -= SKIP
    for k in keys:
        p = Path(k)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(s3.get_object(Bucket=cfg.bucket, Key=k)["Body"].read())
    for p in Path("state").rglob("*"):
        if p.is_file() and p.as_posix() not in keys | SKIP:
            p.unlink()
    print(f"pulled {len(keys)} files")


sync = Collection("sync", pull)
ns = Collection(dr, sync)
'''


def test_post_rollback_hook_brings_the_local_copy_in_line(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    (repo.path / "tasks.py").write_text(SYNC_TASKS)
    row, at_snapshot = seeded_with_snapshot(repo)
    damage(repo)
    (repo.path / "state/skills/alpha/a.txt").write_bytes(b"a bad edit\n")
    (repo.path / "state/skills/alpha/added.txt").write_bytes(b"added after the snapshot\n")
    repo.write_config(hooks={"post_rollback": ["inv sync.pull"]})
    path = f"{os.path.dirname(INV)}{os.pathsep}{os.environ.get('PATH', '')}"  # `inv` as a shell finds it
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", env={"PATH": path})
    assert r.returncode == 0, r.stderr
    assert "pulled 5 files" in r.stdout
    tree = {k: v for k, v in local_tree(repo.path).items() if k.startswith("state/")}
    assert tree.pop(INDEX_KEY) == repo.index_bytes()
    assert [x["kind"] for x in repo.index_rows()] == ["snapshot", "snapshot", "rollback"]
    assert tree == {k: v for k, v in at_snapshot.items() if k != INDEX_KEY}


@pytest.mark.parametrize("index", ["state/log/[dr].ndjson", "state/log/snapshots.ndjson "])
def test_an_index_path_gitignore_would_misread_is_still_preserved(server, bucket, make_repo, index):
    """`[...]` is a character class and a trailing space is trimmed in gitignore: the index is kept by exact path."""
    repo = make_repo(server, bucket, index=index)
    repo.seed()
    put(repo, index, b'{"pushed": "before the snapshot"}\n')
    row = snapshot(repo, "good")
    put(repo, index, b'{"pushed": "after the snapshot"}\n')
    j = repo.run("dr.rollback", row["id"], "--json")
    assert j.returncode == 0, j.stderr  # only the preserved index differs: nothing to change
    plan = json.loads(j.stdout)
    assert [i["key"] for i in plan["preserved"]] == [index]
    assert all(i["key"] != index for i in plan["copy"] + plan["delete"])
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert r.returncode == 0, r.stderr
    assert live_state(repo)[index] == b'{"pushed": "after the snapshot"}\n'


def test_a_preserve_pattern_equal_to_a_bracketed_index_does_not_preserve_other_files(server, bucket, make_repo):
    """The index named in `preserve` is the index, not a pattern that also matches `state/log/d.ndjson`."""
    index = "state/log/[dr].ndjson"
    repo = make_repo(server, bucket, index=index, preserve=[index])
    repo.seed()
    row = snapshot(repo, "good")
    put(repo, "state/log/d.ndjson", b"written after the snapshot\n")
    plan = json.loads(repo.run("dr.rollback", row["id"], "--json").stdout)
    assert [i["key"] for i in plan["delete"]] == ["state/log/d.ndjson"]
