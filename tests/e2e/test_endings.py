"""How operations end: bad index rows, an index that cannot take the row, signals, Invoke's dry mode, unprune.

Each test runs the real `inv` in a scratch host repo against moto and Ceph RGW.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import time
from typing import Any

import pytest

from tests.conftest import INV, SAMPLE_FILES, HostRepo, assert_clean_refusal, bucket_state
from tests.support.faultproxy import Rule

INDEX_KEY = "state/log/snapshots.ndjson"


def snapshot(repo: HostRepo, label: str) -> dict[str, Any]:
    r = repo.run("dr.snapshot", f"--label={label}", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def append_lines(repo: HostRepo, *lines: str) -> None:
    with open(repo.index_path, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


# ---------------------------------------------------------------------- item 9: bad rows
BAD_ROLLBACK = '{"v":1,"kind":"rollback","id":"x","ts":"2026-01-01T00:00:00Z","interrupted_safety_snapshots":5}'
BAD_SNAPSHOT = '{"v":1,"kind":"snapshot","id":["a","b"],"ts":"2026-01-01T00:00:00Z","label":"pre-rollback-good"}'


@pytest.mark.parametrize("bad", [BAD_ROLLBACK, BAD_SNAPSHOT], ids=["rollback-row", "snapshot-id-list"])
def test_a_row_with_wrong_types_is_a_reported_bad_line_for_every_reader(server, bucket, make_repo, bad):
    repo = make_repo(server, bucket)
    repo.seed()
    row = snapshot(repo, "good")
    append_lines(repo, bad)
    bad_line = len(repo.index_bytes().decode().splitlines())
    where = f"line {bad_line}:"

    plan = repo.run("dr.rollback", row["id"])  # live equals the snapshot: a plan with nothing to change exits 0
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr
    assert "nothing to change" in plan.stdout and where in plan.stderr, (plan.stdout, plan.stderr)
    for args in (["dr.list"], ["dr.show", row["id"]], ["dr.prune", "--keep-last=1"], ["dr.reindex"]):
        r = repo.run(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr)
        assert where in r.stderr, (args, r.stderr)
    for args in (["dr.freshness"], ["dr.verify"]):
        r = repo.run(*args)
        assert "Traceback" not in r.stderr + r.stdout and where in r.stdout + r.stderr, (args, r.stdout, r.stderr)

    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json")
    assert r.returncode == 0, r.stderr
    assert where in r.stderr
    assert json.loads(r.stdout).get("interrupted_safety_snapshots", []) == []
    # The bad line stays as it was: the index is never rewritten.
    assert bad in repo.index_bytes().decode().splitlines()


# ---------------------------------------------------------------------- item 10: the row cannot be written
def run_limited(repo: HostRepo, limit: int, *args: str) -> subprocess.Popen[str]:
    """`inv <args>` that may write files of at most `limit` bytes (ulimit -f), as a full disk would stop it."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen(
        [INV, *args],
        cwd=repo.path,
        env=repo.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=cap,
    )


def test_an_index_that_cannot_take_a_row_refuses_the_rollback_before_any_change(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    row = snapshot(repo, "good")
    repo.server.client().put_object(Bucket=bucket, Key="state/skills/alpha/a.txt", Body=b"bad edit\n")
    before, index_before = bucket_state(server, bucket), repo.index_bytes()

    proc = run_limited(repo, len(index_before) + 10, "dr.rollback", row["id"], "--apply", "--confirm-label=good")
    out, err = proc.communicate(timeout=120)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_clean_refusal(r, "cannot append to the index", "ulimit -f", "live was not touched")
    assert bucket_state(server, bucket) == before
    assert repo.index_bytes() == index_before


def test_a_rollback_whose_row_cannot_be_written_says_live_was_rolled_back_and_how_to_undo(
    server, bucket, make_repo, fault_proxy
):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url, prefix="live/", concurrency=1)
    repo.seed()
    row = snapshot(repo, "good")
    c = repo.server.client()
    c.put_object(Bucket=bucket, Key="live/state/skills/alpha/a.txt", Body=b"bad edit\n")
    c.put_object(Bucket=bucket, Key="live/state/skills/alpha/added.txt", Body=b"added\n")
    limit = 64 * 1024
    # The rollback's copy back to live is slowed, so the disk "fills up" while it runs.
    slow = fault_proxy.add(Rule(op="CopyObject", key="live/state/", fault=None, times=-1, delay=1.5))
    proc = run_limited(repo, limit, "dr.rollback", row["id"], "--apply", "--confirm-label=good")
    deadline = time.monotonic() + 60
    while slow.matched < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert slow.matched >= 1 and proc.poll() is None
    safety = [x for x in repo.index_rows() if x["kind"] == "snapshot"][-1]
    assert safety["label"] == "pre-rollback-good"
    # Room for 100 bytes more: the rollback row gets cut part-way.
    filler = '{"v":1,"kind":"note","id":"filler","pad":"'
    size = len(repo.index_bytes())
    append_lines(repo, filler + "x" * (limit - 100 - size - len(filler) - 3) + '"}')
    index_full = repo.index_bytes()
    assert len(index_full) == limit - 100
    out, err = proc.communicate(timeout=120)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    assert_clean_refusal(r, f"live WAS rolled back to {row['id']}", f"safety snapshot {safety['id']}")
    assert f"inv dr.rollback {safety['id']} --apply --confirm-label=pre-rollback-good" in r.stderr
    assert "no part of the row was left in the index" in r.stderr
    assert repo.index_bytes() == index_full  # no half row as the last line
    assert (
        c.get_object(Bucket=bucket, Key="live/state/skills/alpha/a.txt")["Body"].read()
        == SAMPLE_FILES["state/skills/alpha/a.txt"]
    )

    # Once there is room: the same command records the rollback and changes nothing more.
    fault_proxy.clear()
    again = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert (result["copied"], result["deleted"]) == (0, 0)
    assert result["interrupted_safety_snapshots"] == [safety["id"]]


def test_a_prune_whose_row_cannot_be_written_deletes_nothing(server, bucket, make_repo):
    from dr_tasks import take_snapshot

    from .test_reindex_prune import at

    repo = make_repo(server, bucket)
    repo.seed()
    cfg = repo.cfg()
    for label, stamp in (("one", "2026-01-01 10:00"), ("two", "2026-01-02 10:00")):
        take_snapshot(cfg, label, now=at(stamp))
    before, index_before = bucket_state(server, bucket), repo.index_bytes()
    proc = run_limited(repo, len(index_before) + 10, "dr.prune", "--keep-last=1", "--apply")
    out, err = proc.communicate(timeout=120)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_clean_refusal(r, "cannot append to the index", "nothing was deleted")
    assert bucket_state(server, bucket) == before
    assert repo.index_bytes() == index_before


# ---------------------------------------------------------------------- item 11: signals
def many_files(n: int = 40) -> dict[str, bytes]:
    return {f"state/skills/u{i % 4}/f{i:03d}.txt": f"file {i}\n".encode() for i in range(n)}


def park_then_signal(proc: subprocess.Popen[str], rule: Rule, fault_proxy: Any, signum: int) -> tuple[str, str]:
    """Wait until `rule` holds a request, send `signum`, then let the held request go; return (stdout, stderr)."""
    deadline = time.monotonic() + 60
    while rule.fired < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert rule.fired >= 1 and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    time.sleep(0.3)
    proc.send_signal(signum)
    time.sleep(0.5)
    fault_proxy.release()
    return proc.communicate(timeout=120)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_a_signal_mid_snapshot_exits_with_its_code_says_so_and_removes_the_copies(
    server, bucket, make_repo, fault_proxy, signum, code
):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed(many_files())
    before, index_before = bucket_state(server, bucket), repo.index_bytes()
    held = fault_proxy.add(Rule(op="CopyObject", fault="hold", skip=10, times=1))
    proc = repo.spawn("dr.snapshot", "--label=nightly")
    out, err = park_then_signal(proc, held, fault_proxy, signum)

    assert proc.returncode == code, err
    assert "Traceback" not in out + err
    # (RGW adds its lease note: it ignores If-None-Match)
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("note: this store ignores")]
    assert len(lines) == 1, err
    assert f"interrupted by {signal.Signals(signum).name}" in lines[0]
    assert "not taken: removed the" in lines[0] and "no index row" in lines[0]
    assert repo.index_bytes() == index_before
    assert bucket_state(server, bucket) == before  # copies, manifest and lease all gone, no delete markers


def test_sigint_mid_rollback_names_the_safety_snapshot_and_the_rerun_converges(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url, prefix="live/")
    files = repo.seed(many_files(20))
    row = snapshot(repo, "good")
    c = repo.server.client()
    for rel in list(files)[:12]:
        c.put_object(Bucket=bucket, Key="live/" + rel, Body=b"bad change\n")
    held = fault_proxy.add(Rule(op="CopyObject", key="live/state/", fault="hold", skip=3, times=1))
    proc = repo.spawn("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    out, err = park_then_signal(proc, held, fault_proxy, signal.SIGINT)

    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    safety = [x for x in repo.index_rows() if x["kind"] == "snapshot"][-1]
    assert safety["label"] == "pre-rollback-good"
    assert "interrupted by SIGINT" in err and f"safety snapshot {safety['id']}" in err
    assert "no rollback row was written" in err and f"inv dr.rollback {safety['id']} --apply" in err
    assert [x["kind"] for x in repo.index_rows()] == ["snapshot", "snapshot"]

    fault_proxy.clear()
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["interrupted_safety_snapshots"] == [safety["id"]]
    for rel, data in files.items():
        assert c.get_object(Bucket=bucket, Key="live/" + rel)["Body"].read() == data


def test_sigint_mid_prune_says_no_row_was_written_and_the_rerun_finishes(server, bucket, make_repo, fault_proxy):
    from dr_tasks import take_snapshot

    from .test_reindex_prune import at

    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    cfg = repo.cfg()
    for label, stamp in (("one", "2026-01-01 10:00"), ("two", "2026-01-02 10:00"), ("three", "2026-01-03 10:00")):
        take_snapshot(cfg, label, now=at(stamp))
    index_before = repo.index_bytes()
    held = fault_proxy.add(Rule(op="DeleteObjects", fault="hold", times=1))
    proc = repo.spawn("dr.prune", "--keep-last=1", "--apply")
    out, err = park_then_signal(proc, held, fault_proxy, signal.SIGINT)

    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    assert "interrupted by SIGINT: prune stopped part-way, no prune row was written" in err
    assert repo.index_bytes() == index_before
    fault_proxy.clear()
    r = repo.run("dr.prune", "--keep-last=1", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    assert repo.index_rows()[-1]["kind"] == "prune"


# ---------------------------------------------------------------------- item 12: Invoke's dry mode
def test_invokes_dry_mode_writes_nothing_to_the_bucket_or_the_index(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    first = snapshot(repo, "one")
    snapshot_ids = [first["id"]]
    for label in ("two", "three"):
        time.sleep(1.0)
        snapshot_ids.append(snapshot(repo, label)["id"])
    # a live change since the snapshots, so that a rollback plan has something to do (and to not apply)
    server.client().put_object(Bucket=bucket, Key="state/skills/alpha/after.txt", Body=b"after the snapshots")
    before, index_before = bucket_state(server, bucket), repo.index_bytes()

    # Commands with --apply show their plan instead.
    for args in (
        ["--dry", "dr.prune", "--keep-last=1", "--apply"],
        ["dr.prune", "--keep-last=1", "--apply", "--dry-run"],
        ["dr.prune", "--keep-last=1", "--apply", "-n"],
    ):
        r = repo.run(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr)
        assert "DELETE" in r.stdout and "dry run: nothing was deleted" in r.stdout, (args, r.stdout)
        assert "nothing is written" in r.stderr, (args, r.stderr)
    r = repo.run("--dry", "dr.rollback", first["id"], "--apply", "--confirm-label=one")
    assert_clean_refusal(r, "not applied")
    # Commands that always write refuse, in one line.
    for args in (
        ["--dry", "dr.snapshot", "--label=x"],
        ["--dry", "dr.pin", snapshot_ids[0]],
        ["--dry", "dr.versioning", "--enable"],
    ):
        r = repo.run(*args)
        assert_clean_refusal(r, "--dry")
        assert "nothing was done" in r.stderr
    r = repo.run("dr.prune", "--keep-last=1", "--apply", "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["applied"] is False
    assert bucket_state(server, bucket) == before
    assert repo.index_bytes() == index_before

    repo.index_path.write_bytes(b"")  # the index is lost: reindex has rows to append
    for args in (["dr.reindex", "--apply", "-n"], ["--dry", "dr.reindex", "--apply"]):
        r = repo.run(*args)
        assert r.returncode == 0 and "dry run: nothing was written" in r.stdout, (args, r.stderr)
        assert repo.index_bytes() == b""


# ---------------------------------------------------------------------- item 13: undoing a prune
def remove_delete_markers(server: Any, bucket: str, prefix: str) -> int:
    """The documented manual undo of a prune: delete the delete markers (by version id) under `prefix`."""
    c = server.client()
    markers = [
        (d["Key"], d["VersionId"])
        for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        for d in page.get("DeleteMarkers", [])
        if d["IsLatest"]
    ]
    for key, vid in markers:
        c.delete_object(Bucket=bucket, Key=key, VersionId=vid)
    return len(markers)


def test_the_documented_undo_of_a_prune_brings_the_snapshot_back_for_list_and_rollback(server, bucket, make_repo):
    from dr_tasks import take_snapshot

    from .test_reindex_prune import at

    repo = make_repo(server, bucket)
    files = repo.seed()
    cfg = repo.cfg()
    ids = [
        take_snapshot(cfg, label, now=at(stamp)).id
        for label, stamp in (("one", "2026-01-01 10:00"), ("two", "2026-01-02 10:00"))
    ]
    r = repo.run("dr.prune", "--keep-last=1", "--apply")
    assert r.returncode == 0, r.stderr
    assert ids[0] not in repo.run("dr.list").stdout

    # The undo the docs give: remove the delete markers of its keys, then reindex.
    assert remove_delete_markers(server, bucket, f"snapshots/{ids[0]}") == len(files) + 1
    r = repo.run("dr.reindex", "--apply")
    assert r.returncode == 0, r.stderr
    assert f"+ snapshot {ids[0]}" in r.stdout
    row = repo.index_rows()[-1]
    assert row["kind"] == "snapshot" and row["id"] == ids[0] and row["reindexed"] is True
    assert ids[0] in repo.run("dr.list").stdout
    again = repo.run("dr.reindex", "--apply")
    assert again.returncode == 0 and repo.index_rows()[-1] == row  # once only

    repo.server.client().put_object(Bucket=bucket, Key="state/skills/alpha/a.txt", Body=b"bad edit\n")
    r = repo.run("dr.rollback", ids[0], "--apply", "--confirm-label=one")
    assert r.returncode == 0, r.stderr
    got = repo.server.client().get_object(Bucket=bucket, Key="state/skills/alpha/a.txt")["Body"].read()
    assert got == files["state/skills/alpha/a.txt"]


def test_reindex_names_a_pruned_snapshot_brought_back_only_in_part(server, bucket, make_repo):
    from dr_tasks import take_snapshot

    from .test_reindex_prune import at

    repo = make_repo(server, bucket)
    repo.seed()
    cfg = repo.cfg()
    ids = [
        take_snapshot(cfg, label, now=at(stamp)).id
        for label, stamp in (("one", "2026-01-01 10:00"), ("two", "2026-01-02 10:00"))
    ]
    assert repo.run("dr.prune", "--keep-last=1", "--apply").returncode == 0
    remove_delete_markers(server, bucket, f"snapshots/{ids[0]}.manifest.json")  # the manifest only
    index_before = repo.index_bytes()
    r = repo.run("dr.reindex", "--apply")
    assert_clean_refusal(r, ids[0], "still deleted")
    assert repo.index_bytes() == index_before


def test_prune_keeps_the_newest_rollbacks_safety_snapshot(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    first = snapshot(repo, "good")
    repo.server.client().put_object(Bucket=bucket, Key="state/skills/alpha/a.txt", Body=b"bad edit\n")
    r = repo.run("dr.rollback", first["id"], "--apply", "--confirm-label=good", "--json")
    assert r.returncode == 0, r.stderr
    safety = json.loads(r.stdout)["safety_snapshot"]
    time.sleep(1.0)
    snapshot(repo, "nightly")

    r = repo.run("dr.prune", "--keep-last=1", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    kept = {d["id"]: d["reasons"] for d in result["keep"]}
    assert safety in kept and any("undo of rollback" in x for x in kept[safety]), kept
    assert first["id"] in [d["id"] for d in result["delete"]]


def test_unprune_brings_a_pruned_snapshot_back_in_one_command(server, bucket, make_repo):
    from dr_tasks import take_snapshot

    from .test_reindex_prune import at

    repo = make_repo(server, bucket)
    files = repo.seed()
    cfg = repo.cfg()
    ids = [
        take_snapshot(cfg, label, now=at(stamp)).id
        for label, stamp in (("one", "2026-01-01 10:00"), ("two", "2026-01-02 10:00"))
    ]
    at_snapshots = bucket_state(server, bucket)
    assert repo.run("dr.prune", "--keep-last=1", "--apply").returncode == 0
    pruned, index_pruned = bucket_state(server, bucket), repo.index_bytes()

    plan = repo.run("dr.unprune", ids[0])
    assert plan.returncode == 0, plan.stderr
    assert f"{len(files) + 1} delete markers hide it" in plan.stdout and "dry run: nothing was changed" in plan.stdout
    assert (bucket_state(server, bucket), repo.index_bytes()) == (pruned, index_pruned)

    r = repo.run("dr.unprune", ids[0], "--apply")
    assert r.returncode == 0, r.stderr
    assert f"unpruned {ids[0]}: removed {len(files) + 1} delete markers; appended its row" in r.stdout
    assert bucket_state(server, bucket) == at_snapshots  # every marker gone, every version as before
    assert ids[0] in repo.run("dr.list").stdout
    again = repo.run("dr.unprune", ids[0], "--apply")
    assert_clean_refusal(again, "is not pruned")

    repo.server.client().put_object(Bucket=bucket, Key="state/skills/alpha/a.txt", Body=b"bad edit\n")
    r = repo.run("dr.rollback", ids[0], "--apply", "--confirm-label=one")
    assert r.returncode == 0, r.stderr
    assert_clean_refusal(repo.run("dr.unprune", "2026-01-05T10:00:00Z-nope"), "has no manifest")
