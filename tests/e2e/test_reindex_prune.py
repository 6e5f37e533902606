"""`dr.reindex`, `dr.prune`, `dr.pin` end to end: real `inv` against real S3 servers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from dr_tasks import take_snapshot
from dr_tasks.lease import LOCK_KEY
from dr_tasks.ops.prune import pin_key
from tests.conftest import assert_clean_refusal, bucket_state, live_objects, new_bucket
from tests.support.faultproxy import Rule

FILES = {"state/skills/alpha/a.txt": b"alpha\n", "state/skills/beta/b.bin": bytes(range(64))}


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)


def make_snapshots(repo: Any, *stamps: str, label: str = "s") -> list[str]:
    """Snapshots taken through the API at the given times (in that order); their ids."""
    cfg = repo.cfg()
    return [take_snapshot(cfg, label, now=at(s)).id for s in stamps]


def under(server: Any, bucket: str, prefix: str = "snapshots/") -> dict[str, bytes]:
    return live_objects(server, bucket, prefix)


def snapshot_keys(objects: dict[str, bytes], snap_id: str) -> dict[str, bytes]:
    return {k: v for k, v in objects.items() if k.startswith((f"snapshots/{snap_id}/", f"snapshots/{snap_id}."))}


# ---------------------------------------------------------------------- reindex
def test_reindex_rebuilds_a_lost_index_from_the_manifests(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed(FILES)
    # taken out of order: the rebuilt rows still come in ts order
    make_snapshots(repo, "2026-01-02 10:00", "2026-01-01 10:00", "2026-01-03 10:00")
    original = sorted(repo.index_rows(), key=lambda r: r["ts"])
    repo.index_path.write_bytes(b"")  # the laptop is gone
    before = bucket_state(server, bucket)

    dry = repo.run("dr.reindex")
    assert dry.returncode == 0, dry.stderr
    for row in original:
        assert f"+ snapshot {row['id']}  (2 objects, {row['bytes']} bytes)" in dry.stdout
    assert "3 missing" in dry.stdout and "dry run: nothing was written" in dry.stdout
    assert repo.index_bytes() == b""

    applied = repo.run("dr.reindex", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "appended 3 rows" in applied.stdout
    assert repo.index_rows() == [{**r, "reindexed": True} for r in original]
    snapshot_index = repo.index_bytes()

    again = repo.run("dr.reindex", "--apply", "--json")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["rows"] == [] and data["present"] == 3
    assert repo.index_bytes() == snapshot_index
    assert bucket_state(server, bucket) == before  # reindex never writes to the bucket
    listed = json.loads(repo.run("dr.list", "--json").stdout)
    assert [s["id"] for s in listed["snapshots"]] == [r["id"] for r in original]


def test_reindex_appends_only_what_is_missing_and_names_bad_manifests(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    ids = make_snapshots(repo, "2026-01-01 10:00", "2026-01-02 10:00", "2026-01-03 10:00")
    middle = [line for line in repo.index_bytes().splitlines(keepends=True) if ids[1].encode() in line]
    repo.index_path.write_bytes(b"".join(middle) + b'{"torn": ')
    c = moto_server.client()
    c.put_object(Bucket=bucket, Key="snapshots/2026-01-04T00:00:00Z-junk.manifest.json", Body=b"not json")
    c.put_object(
        Bucket=bucket, Key="snapshots/2026-01-05T00:00:00Z-liar.manifest.json", Body=json.dumps({"id": "other"})
    )
    c.put_object(Bucket=bucket, Key="snapshots/README.manifest.json", Body=b"{}")
    r = repo.run("dr.reindex", "--apply")
    assert_clean_refusal(r, "3 manifests could not be turned into rows")
    assert "2026-01-04T00:00:00Z-junk.manifest.json: not valid JSON" in r.stderr
    assert "2026-01-05T00:00:00Z-liar.manifest.json: names id 'other'" in r.stderr
    assert "'README' is not a snapshot id" in r.stderr
    assert "line 2" in r.stderr  # the torn line is reported, kept, and not glued to
    data = repo.index_bytes()
    assert data.startswith(b"".join(middle) + b'{"torn": \n')
    good = []
    for line in data.decode().splitlines():
        try:
            good.append(json.loads(line))
        except ValueError:
            continue
    assert [row["id"] for row in good] == [ids[1], ids[0], ids[2]]


# ---------------------------------------------------------------------- prune
DAYS = ("2026-01-01 10:00", "2026-01-01 12:00", "2026-01-02 10:00", "2026-01-03 10:00", "2026-01-03 11:00")


def test_prune_is_a_dry_run_first_then_deletes_by_counts(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed(FILES)
    ids = make_snapshots(repo, *DAYS)
    before_objects = under(server, bucket)
    before = (repo.index_bytes(), bucket_state(server, bucket))

    dry = repo.run("dr.prune", "--keep-daily=2")
    assert dry.returncode == 0, dry.stderr
    assert "keep 2, delete 3" in dry.stdout and "dry run: nothing was deleted" in dry.stdout
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before

    r = repo.run("dr.prune", "--keep-daily=2", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    doomed = [ids[3], ids[1], ids[0]]
    assert [d["id"] for d in result["delete"]] == doomed
    assert [d["id"] for d in result["keep"]] == [ids[4], ids[2]]
    after = under(server, bucket)
    kept = {k: v for i in (ids[4], ids[2]) for k, v in snapshot_keys(before_objects, i).items()}
    assert after == kept  # kept snapshots byte-identical, pruned ones gone (manifest and objects)
    row = repo.index_rows()[-1]
    assert row["kind"] == "prune" and row["deleted"] == doomed and row["kept"] == [ids[4], ids[2]]
    assert row["rules"] == {"last": 0, "daily": 2, "weekly": 0, "monthly": 0}
    assert row["objects"] == 3 * (len(FILES) + 1)
    # versioned bucket: the deletes are delete markers, so a prune can still be undone until lifecycle expiry
    markers = {k for k, _, etag, latest in bucket_state(server, bucket) if etag == "DM" and latest}
    assert {f"snapshots/{i}.manifest.json" for i in doomed} <= markers
    assert not any(k == LOCK_KEY for k, *_ in bucket_state(server, bucket))

    nothing = repo.run("dr.prune", "--keep-daily=2", "--apply")
    assert nothing.returncode == 0 and "nothing to delete" in nothing.stdout
    assert repo.index_rows()[-1] == row  # no second row


def test_prune_refuses_without_a_keep_rule_or_with_a_bad_count(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    make_snapshots(repo, *DAYS[:2])
    before = (repo.index_bytes(), bucket_state(moto_server, bucket))
    for args in (("--apply",), (), ("--keep-last=0", "--apply")):
        r = repo.run("dr.prune", *args)
        assert_clean_refusal(r, "refusing to prune with no keep rule", "--keep-last, --keep-daily")
    r = repo.run("dr.prune", "--keep-weekly=two", "--apply")
    assert_clean_refusal(r, "--keep-weekly must be a whole number of at least 0, got 'two'")
    assert (repo.index_bytes(), bucket_state(moto_server, bucket)) == before


def test_prune_always_keeps_the_newest(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    ids = make_snapshots(repo, "2025-01-01 10:00", "2026-01-01 10:00")
    # monthly=1 on a month before the newest... still the newest is kept
    r = repo.run("dr.prune", "--keep-monthly=1", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    assert [d["id"] for d in json.loads(r.stdout)["keep"]] == [ids[1]]


def test_pin_protects_a_snapshot_from_prune_until_unpinned(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    ids = make_snapshots(repo, "2026-01-01 10:00", "2026-01-02 10:00", "2026-01-03 10:00")
    r = repo.run("dr.pin", ids[0], "--reason=before the v2 migration")
    assert r.returncode == 0 and f"pinned {ids[0]}" in r.stdout, r.stderr
    pin_row = repo.index_rows()[-1]
    assert pin_row["kind"] == "pin" and pin_row["id"] == ids[0] and pin_row["pinned"] is True
    assert pin_row["reason"] == "before the v2 migration"
    assert pin_key(ids[0]) in live_objects(moto_server, bucket, ".dr-tasks/")
    before = repo.index_bytes()
    again = repo.run("dr.pin", ids[0])
    assert again.returncode == 0 and "was already pinned: nothing written" in again.stdout
    assert repo.index_bytes() == before

    r = repo.run("dr.prune", "--keep-last=1", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    keep = {d["id"]: d["reasons"] for d in json.loads(r.stdout)["keep"]}
    assert keep == {ids[2]: ["newest", "last"], ids[0]: ["pinned"]}

    r = repo.run("dr.pin", ids[0], "--unpin")
    assert r.returncode == 0 and f"unpinned {ids[0]}" in r.stdout, r.stderr
    # the marker is gone with every version: no delete marker left behind
    assert not any(k == pin_key(ids[0]) for k, *_ in bucket_state(moto_server, bucket))
    r = repo.run("dr.prune", "--keep-last=1", "--apply", "--json")
    assert [d["id"] for d in json.loads(r.stdout)["delete"]] == [ids[0]]


def test_pin_refuses_unknown_and_pruned_snapshots(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    ids = make_snapshots(repo, "2026-01-01 10:00", "2026-01-02 10:00")
    assert repo.run("dr.prune", "--keep-last=1", "--apply").returncode == 0
    before = (repo.index_bytes(), bucket_state(moto_server, bucket))
    r = repo.run("dr.pin", ids[0][:-1] + "x")
    assert_clean_refusal(r, "unknown snapshot id", ids[1])
    r = repo.run("dr.pin", ids[0])
    assert_clean_refusal(r, f"snapshot {ids[0]} has no manifest", "nothing to pin")
    r = repo.run("dr.pin", ids[1], "--reason=two\nlines")
    assert_clean_refusal(r, "--reason must be one printable line")
    assert (repo.index_bytes(), bucket_state(moto_server, bucket)) == before


def test_interrupted_prune_converges_on_the_next_run(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed(FILES)
    ids = make_snapshots(repo, *DAYS[:4])
    newest = snapshot_keys(under(server, bucket), ids[3])
    # the manifests batch goes through, the objects batch fails (403: not retried)
    fault_proxy.add(Rule(op="DeleteObjects", fault=403, skip=1, times=1))
    r = repo.run("dr.prune", "--keep-last=1", "--apply")
    assert_clean_refusal(r, "prune failed", "no prune row was written", "run the same command again")
    assert [row["kind"] for row in repo.index_rows()] == ["snapshot"] * 4
    left = under(server, bucket)
    assert not any(k.endswith(".manifest.json") and ids[3] not in k for k in left)  # manifests went first
    fault_proxy.clear()

    r = repo.run("dr.prune", "--keep-last=1", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    row = repo.index_rows()[-1]
    assert row["kind"] == "prune" and row["deleted"] == [] and row["orphans"] == sorted(ids[:3])
    assert under(server, bucket) == newest  # exactly what a clean prune leaves
    assert not any(k == LOCK_KEY for k, *_ in bucket_state(server, bucket))


def test_prune_leaves_foreign_and_recent_incomplete_dirs_alone(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    make_snapshots(repo, "2026-01-01 10:00")
    c = moto_server.client()
    recent = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") + "-running"
    c.put_object(Bucket=bucket, Key=f"snapshots/{recent}/state/x", Body=b"x")  # a snapshot still copying?
    c.put_object(Bucket=bucket, Key="snapshots/2025-01-01T00:00:00Z-crashed/state/x", Body=b"x")
    c.put_object(Bucket=bucket, Key="snapshots/not-a-snapshot/keep.txt", Body=b"mine")
    r = repo.run("dr.prune", "--keep-last=1", "--apply")
    assert r.returncode == 0, r.stderr
    assert f"too recent to remove: snapshots/{recent}/" in r.stdout
    assert "not a snapshot, left alone: snapshots/not-a-snapshot/" in r.stdout
    left = set(under(moto_server, bucket))
    assert f"snapshots/{recent}/state/x" in left and "snapshots/not-a-snapshot/keep.txt" in left
    assert "snapshots/2025-01-01T00:00:00Z-crashed/state/x" not in left
    assert repo.index_rows()[-1]["orphans"] == ["2025-01-01T00:00:00Z-crashed"]


def test_prune_apply_waits_for_the_lease_but_a_dry_run_does_not(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    make_snapshots(repo, *DAYS[:3])
    moto_server.client().put_object(
        Bucket=bucket,
        Key=LOCK_KEY,
        Body=json.dumps({"token": "t", "owner": "ann", "host": "far", "pid": 7, "operation": "backup"}).encode(),
    )
    before = (repo.index_bytes(), bucket_state(moto_server, bucket))
    assert repo.run("dr.prune", "--keep-last=1").returncode == 0
    r = repo.run("dr.prune", "--keep-last=1", "--apply")
    assert_clean_refusal(r, "lease held by ann@far pid 7 for backup")
    assert (repo.index_bytes(), bucket_state(moto_server, bucket)) == before


def test_reindex_brings_back_pins_from_the_bucket(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed(FILES)
    ids = make_snapshots(repo, "2026-01-01 10:00", "2026-01-02 10:00")
    assert repo.run("dr.pin", ids[0]).returncode == 0
    repo.index_path.write_bytes(b"")
    r = repo.run("dr.reindex", "--apply")
    assert r.returncode == 0, r.stderr
    rows = repo.index_rows()
    assert [(row["kind"], row["id"]) for row in rows] == [("snapshot", ids[0]), ("snapshot", ids[1]), ("pin", ids[0])]
    # and prune honours the pin even before the reindex: the marker is in the bucket
    repo.index_path.write_bytes(b"")
    r = repo.run("dr.prune", "--keep-last=1", "--json")
    assert {d["id"] for d in json.loads(r.stdout)["keep"]} == set(ids)
