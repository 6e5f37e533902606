"""`inv dr.restore`'s report, said from the operator's side: what changed in live since TS, and what the restore did.

The first report read from the restore's side: "added prompts/system.txt"
meant the file had been *deleted* since TS. These tests delete one live file,
create one and change one, then check each line of the report and the keys of
`--json` that say the same.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta, timezone

from dr_tasks.timeparse import compact_utc, iso_utc
from tests.conftest import HostRepo, assert_clean_refusal, local_tree
from tests.e2e.test_restore import put, wait_past

UNIT = "snappy"
U = f"state/skills/{UNIT}/"
AT_TS: dict[str, bytes] = {
    "prompts/system.txt": b"You are a careful assistant.\n",
    "config.json": json.dumps({"quality": 85, "debug": False}).encode(),
    "README.md": b"# snappy\n",
}


def _seeded(repo: HostRepo) -> datetime:
    """AT_TS in the bucket and live; returns TS, the newest LastModified the server gave them."""
    for name, data in AT_TS.items():
        put(repo.server, repo.bucket, U + name, data)
        p = repo.path / U / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    listing = repo.server.client().list_object_versions(Bucket=repo.bucket, Prefix=U)
    ts: datetime = max(v["LastModified"] for v in listing["Versions"])
    return ts


def _damaged_day(repo: HostRepo) -> datetime:
    """Keys at TS in the bucket; live then loses one file, gains one and changes one. Returns TS."""
    ts = _seeded(repo)
    wait_past(repo.server, ts)
    (repo.path / U / "prompts/system.txt").unlink()
    (repo.path / U / "notes.md").write_bytes(b"written after TS\n")
    (repo.path / U / "config.json").write_bytes(json.dumps({"quality": 90, "debug": False}).encode())
    return ts


def test_the_report_says_what_changed_since_ts_and_what_the_restore_did(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    ts = _damaged_day(repo)
    live_before = {k: v for k, v in local_tree(repo.path).items() if not k.startswith("_restore/")}

    r = repo.run("dr.restore", UNIT, iso_utc(ts))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert f"live {U} since TS ({iso_utc(ts)}): 1 deleted, 1 created, 1 changed, 1 unchanged" in out, r.stdout
    assert "  prompts/system.txt: deleted since TS -> restored into the holding dir" in out, r.stdout
    assert "  notes.md: created since TS -> not in the holding dir (absent at TS); the live file stays" in out, r.stdout
    assert "  config.json: changed since TS (JSON, structural) -> restored as at TS into the holding dir" in out, (
        r.stdout
    )
    assert "what changed, file by file (- live now, + as at TS):" in out
    assert "  ~ root['quality']: 90 -> 85" in out
    # the words of the first report, which read backwards, are gone
    assert not [line for line in out if line.startswith(("  added ", "  removed ", "  modified "))], r.stdout
    assert "README.md:" not in r.stdout  # unchanged files are counted, not listed

    hold = repo.path / "_restore" / f"{UNIT}-{compact_utc(ts)}"
    assert local_tree(hold) == AT_TS
    assert {k: v for k, v in local_tree(repo.path).items() if not k.startswith("_restore/")} == live_before


def test_the_json_report_has_keys_that_say_the_same(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    ts = _damaged_day(repo)

    r = repo.run("dr.restore", UNIT, iso_utc(ts), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    d = res["diff"]
    assert d["deleted_since_ts"] == ["prompts/system.txt"]
    assert d["created_since_ts"] == ["notes.md"]
    assert d["changed_since_ts"] == ["config.json"]
    assert d["unchanged"] == ["README.md"]
    counts = res["counts"]
    assert (counts["deleted_since_ts"], counts["created_since_ts"], counts["changed_since_ts"]) == (1, 1, 1)
    # the first names stay, with their first meaning, for scripts written against them (docs/DESIGN.md)
    assert (d["added"], d["removed"], d["modified"]) == (["prompts/system.txt"], ["notes.md"], ["config.json"])
    assert (counts["added"], counts["removed"], counts["modified"]) == (1, 1, 1)
    receipt = json.loads((repo.path / "_restore" / f"{UNIT}-{compact_utc(ts)}.json").read_text())
    assert receipt["counts"] == counts


def test_a_restore_of_an_unchanged_unit_says_nothing_changed(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    ts = _seeded(repo)
    r = repo.run("dr.restore", UNIT, iso_utc(ts))
    assert r.returncode == 0, r.stderr
    assert f"0 deleted, 0 created, 0 changed, {len(AT_TS)} unchanged" in r.stdout
    assert "since TS ->" not in r.stdout and "file by file" not in r.stdout


# ---------------------------------------------------------------------- a snapshot id where a TS is expected
def test_a_snapshot_id_restores_at_the_instant_the_index_records(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    seeded_at = _seeded(repo)
    # snapshot ids are whole seconds: take it in a later second than the writes it holds
    time.sleep(max(0.0, math.floor(seeded_at.timestamp()) + 1.05 - time.time()))
    snap = repo.run("dr.snapshot", "--label=good")
    assert snap.returncode == 0, snap.stderr
    row = repo.index_rows()[-1]
    assert row["kind"] == "snapshot"
    snap_id, snap_ts = row["id"], datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    wait_past(server, snap_ts + timedelta(seconds=1))
    # the bad day, in the bucket this time
    put(server, bucket, U + "config.json", b'{"quality": 10}')
    server.client().delete_object(Bucket=bucket, Key=U + "prompts/system.txt")
    put(server, bucket, U + "later.txt", b"after the snapshot\n")

    r = repo.run("dr.restore", UNIT, snap_id, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["ts"] == row["ts"] and res["ts_input"] == snap_id
    assert res["born_after_ts"] == ["later.txt"]
    assert local_tree(repo.path / "_restore" / f"{UNIT}-{compact_utc(snap_ts)}") == AT_TS
    assert f"restoring at the instant snapshot {snap_id} was taken" in r.stderr

    # an id the index does not have: refused before any request, naming the ids it has
    before = repo.index_bytes()
    missing = snap_id.replace("-good", "-goood")
    bad = repo.run("dr.restore", UNIT, missing)
    assert_clean_refusal(bad, f"unknown snapshot id {missing!r}", snap_id, "inv dr.list")
    assert repo.index_bytes() == before
    assert sorted(p.name for p in (repo.path / "_restore").iterdir()) == sorted(
        [f"{UNIT}-{compact_utc(snap_ts)}", f"{UNIT}-{compact_utc(snap_ts)}.json"]
    )
