"""`inv dr.restore` end to end: a real `inv` subprocess against real S3 servers over HTTP.

The version history is real: objects are written, overwritten and deleted in
phases, and the instants a restore asks for are the LastModified values the
server recorded (read back from ListObjectVersions), not guesses from the
local clock. Phases are separated by just enough time for the server's
timestamp resolution (moto: 1 s, RGW: 1 ms), so the tests stay fast.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dr_tasks import DrError, restore_at
from dr_tasks.timeparse import compact_utc, iso_utc
from dr_tasks.transport import count_requests
from tests.conftest import HostRepo, Server, assert_clean_refusal, bucket_state, local_tree, new_bucket
from tests.support.faultproxy import Rule

UNIT = "snappy"
U = f"state/skills/{UNIT}/"
UNI = "caf\u00e9/\u30d5\u30a1\u30a4\u30eb \u2603.txt"
READ_ONLY_OPS = {"ListObjectVersions", "GetObject", "GetBucketVersioning"}

PHASE0: dict[str, bytes] = {
    "README.md": b"# snappy\n\nResizes images quickly.\nline 4\n",
    "config.json": json.dumps({"quality": 85, "formats": ["png", "jpeg"], "debug": False}, indent=2).encode(),
    "settings.yaml": b"retries: 3\nmode: fast\n",
    "data.ndjson": b'{"n": 0}\n{"n": 1}\n',
    "model.bin": bytes(range(256)) * 4,
    "gone.txt": b"deleted in phase 1\n",
    "reborn.txt": b"first life\n",
    UNI: "unicode \u2713\n".encode(),
}
# Written last in phase 0: its LastModified is T0, so "exactly at TS counts" is tested.
LAST0 = ("zzz-last.txt", b"written exactly at T0\n")
PHASE1_PUTS: dict[str, bytes] = {
    "README.md": b"# snappy\n\nResizes images slowly.\nline 4\n",
    "config.json": json.dumps({"quality": 90, "formats": ["png", "jpeg", "webp"]}, indent=2).encode(),
    "settings.yaml": b"retries: 5\nmode: fast\n",
    "data.ndjson": b'{"n": 0}\n{"n": 2}\n',
    "model.bin": bytes(reversed(range(256))) * 5,
}
PHASE1_DELETES = ("gone.txt", "reborn.txt")
LAST1 = ("born-after.txt", b"created in phase 1, after T0\n")
PHASE2_PUTS: dict[str, bytes] = {"reborn.txt": b"second life\n"}
LAST2 = ("README.md", b"# snappy\n\nResizes images, v3.\nline 4\n")


@dataclass
class History:
    t0: datetime
    t1: datetime
    t2: datetime
    at_t0: dict[str, bytes]
    at_t1: dict[str, bytes]
    at_t2: dict[str, bytes]


# ---------------------------------------------------------------------- helpers


def last_modified(server: Server, bucket: str, key: str, version_id: str) -> datetime:
    """The LastModified the server recorded for one version (ms on RGW, s on moto)."""
    r = server.client().list_object_versions(Bucket=bucket, Prefix=key)
    for v in r.get("Versions", []) + r.get("DeleteMarkers", []):
        if v["Key"] == key and v["VersionId"] == version_id:
            return v["LastModified"]
    raise AssertionError(f"version {version_id} of {key} not listed")


def wait_past(server: Server, t: datetime) -> None:
    """Sleep until a new write gets a LastModified strictly after `t` at the server's resolution."""
    gap = 1.0 if server.name == "moto" else 0.005
    delay = t.timestamp() + gap + 0.02 - time.time()
    if delay > 0:
        time.sleep(delay)


def put(server: Server, bucket: str, key: str, data: bytes) -> str:
    return str(server.client().put_object(Bucket=bucket, Key=key, Body=data).get("VersionId", ""))


def build_history(server: Server, bucket: str, prefix: str = U) -> History:
    """Three phases of writes under `prefix`, returning the instants between them and the state at each."""
    c = server.client()
    vids = {name: put(server, bucket, prefix + name, data) for name, data in PHASE0.items()}
    # LAST0 alone at T0, so one tick before T0 everything else existed and it did not
    wait_past(server, max(last_modified(server, bucket, prefix + n, v) for n, v in vids.items()))
    t0 = last_modified(server, bucket, prefix + LAST0[0], put(server, bucket, prefix + LAST0[0], LAST0[1]))
    at_t0 = {**PHASE0, LAST0[0]: LAST0[1]}
    wait_past(server, t0)
    for name, data in PHASE1_PUTS.items():
        put(server, bucket, prefix + name, data)
    for name in PHASE1_DELETES:
        c.delete_object(Bucket=bucket, Key=prefix + name)
    t1 = last_modified(server, bucket, prefix + LAST1[0], put(server, bucket, prefix + LAST1[0], LAST1[1]))
    at_t1 = {k: v for k, v in {**at_t0, **PHASE1_PUTS, LAST1[0]: LAST1[1]}.items() if k not in PHASE1_DELETES}
    wait_past(server, t1)
    for name, data in PHASE2_PUTS.items():
        put(server, bucket, prefix + name, data)
    t2 = last_modified(server, bucket, prefix + LAST2[0], put(server, bucket, prefix + LAST2[0], LAST2[1]))
    at_t2 = {**at_t1, **PHASE2_PUTS, LAST2[0]: LAST2[1]}
    return History(t0, t1, t2, at_t0, at_t1, at_t2)


def write_live(repo: HostRepo, files: dict[str, bytes], base: str = U) -> None:
    for name, data in files.items():
        p = repo.path / base / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def holding(repo: HostRepo, stem: str, ts: datetime) -> Path:
    return repo.path / "_restore" / f"{stem}-{compact_utc(ts)}"


def live_tree(repo: HostRepo) -> dict[str, bytes]:
    return {k: v for k, v in local_tree(repo.path).items() if not k.startswith("_restore/")}


@dataclass
class Before:
    bucket: list[Any]
    tree: dict[str, bytes]
    index: bytes


def before(repo: HostRepo) -> Before:
    return Before(bucket_state(repo.server, repo.bucket), live_tree(repo), repo.index_bytes())


def assert_untouched(repo: HostRepo, b: Before) -> None:
    assert bucket_state(repo.server, repo.bucket) == b.bucket
    assert live_tree(repo) == b.tree
    assert repo.index_bytes() == b.index


# ---------------------------------------------------------------------- the core cases
def test_point_in_time_restore_of_a_unit(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    h = build_history(server, bucket)
    # a neighbouring unit and a sub-prefix look-alike must stay out of the restore
    put(server, bucket, "state/skills/other/x.txt", b"other unit")
    put(server, bucket, "state/skills/snappy-two/y.txt", b"look-alike prefix")
    write_live(repo, h.at_t2)
    b = before(repo)
    fault_proxy.clear()

    # --- at T0: overwritten keys at their first version, deleted and re-created keys present, later keys absent
    r = repo.run("dr.restore", UNIT, iso_utc(h.t0))
    assert r.returncode == 0, r.stderr
    hold = holding(repo, UNIT, h.t0)
    assert local_tree(hold) == h.at_t0
    out = r.stdout
    assert f"restored unit {UNIT} as it was at {iso_utc(h.t0)} into _restore/{hold.name}/" in out
    assert "1 deleted, 1 created, 6 changed, 2 unchanged" in out
    assert "  gone.txt: deleted since TS -> restored into the holding dir" in out
    assert "  born-after.txt: created since TS -> not in the holding dir" in out
    # text: a unified diff from live to the restored version
    assert "--- live/README.md" in out and f"+++ at-{compact_utc(h.t0)}/README.md" in out
    assert "-Resizes images, v3." in out and "+Resizes images quickly." in out
    # JSON, YAML, NDJSON: what changed by path, not by line
    assert "~ root['quality']: 90 -> 85" in out
    assert "- root['formats'][2]: \"webp\"" in out and "+ root['debug']: false" in out
    assert "~ root['retries']: 5 -> 3" in out
    assert "~ root[1]['n']: 2 -> 1" in out
    # binary: size and sha256 of both sides
    import hashlib

    assert "model.bin (binary)" in out
    assert hashlib.sha256(PHASE1_PUTS["model.bin"]).hexdigest() in out
    assert hashlib.sha256(PHASE0["model.bin"]).hexdigest() in out
    assert "nothing live was changed" in out
    # mtime is each version's LastModified
    listing = server.client().list_object_versions(Bucket=bucket, Prefix=U)
    by_vid = {v["VersionId"]: v["LastModified"] for v in listing["Versions"]}
    receipt = json.loads((repo.path / "_restore" / f"{hold.name}.json").read_text())
    assert receipt["unit"] == UNIT and receipt["ts"] == iso_utc(h.t0)
    assert receipt["counts"]["restored"] == len(h.at_t0)
    assert receipt["counts"]["born_after_ts"] == 1 and receipt["counts"]["modified"] == 6
    for v in receipt["versions"]:
        assert abs((hold / v["name"]).stat().st_mtime - by_vid[v["version_id"]].timestamp()) < 0.002
    assert {v["name"] for v in receipt["versions"]} == set(h.at_t0)
    # read-only: listing and GETs of exactly the restored versions, nothing else
    assert set(fault_proxy.counts) <= READ_ONLY_OPS, fault_proxy.counts
    assert fault_proxy.counts["GetObject"] == len(h.at_t0)
    assert_untouched(repo, b)

    # --- one tick before T0 the key written exactly at T0 did not exist yet (the Python API, same operation)
    cfg = repo.cfg()
    tick = timedelta(seconds=1) if server.name == "moto" else timedelta(milliseconds=1)
    early = restore_at(cfg, h.t0 - tick, unit=UNIT)
    assert LAST0[0] in early.born_after_ts and LAST0[0] not in {f.name for f in early.restored}
    assert local_tree(Path(early.holding_path)) == {k: v for k, v in h.at_t0.items() if k != LAST0[0]}

    # --- at T1, given with an offset: the delete markers make gone.txt and reborn.txt absent
    t1_plus2 = h.t1.astimezone(timezone(timedelta(hours=2))).isoformat()
    r = repo.run("dr.restore", UNIT, t1_plus2, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["ts"] == iso_utc(h.t1) and res["ok"] is True
    assert local_tree(holding(repo, UNIT, h.t1)) == h.at_t1
    assert sorted(res["deleted_at_ts"]) == ["gone.txt", "reborn.txt"]
    assert res["born_after_ts"] == []
    assert res["diff"]["removed"] == ["reborn.txt"] and res["diff"]["added"] == []

    # --- at T2 the re-created key is back with its second life; live equals it
    at_t2 = restore_at(cfg, h.t2, unit=UNIT)
    assert local_tree(Path(at_t2.holding_path)) == h.at_t2
    assert at_t2.counts()["unchanged"] == len(h.at_t2) and at_t2.counts()["modified"] == 0

    # --- a time in the future restores the current state and says so
    future = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3)
    later = restore_at(cfg, iso_utc(future), unit=UNIT)
    assert later.future and any("restoring the current state" in w for w in later.warnings)
    assert local_tree(holding(repo, UNIT, future)) == h.at_t2

    assert set(fault_proxy.counts) <= READ_ONLY_OPS, fault_proxy.counts
    assert_untouched(repo, b)


def test_traversal_keys_are_never_written_and_exit_1(server, bucket, make_repo, tmp_path):
    repo = make_repo(server, bucket)
    bad = {
        "state/skills/evil/../../../../escape.txt": "'.' or '..' segment",
        "state/skills/evil//abs.txt": "absolute path",
        "state/skills/evil/a//b.txt": "empty path segment",
        "state/skills/evil/back\\..\\slash.txt": "backslash",
        "state/skills/evil/x": "both a file and a directory",
    }
    good = {"state/skills/evil/ok.txt": b"fine", "state/skills/evil/x/y.txt": b"under x/"}
    for key in bad:
        put(server, bucket, key, b"must never be written")
    for key, data in good.items():
        put(server, bucket, key, data)
    listed = {v["Key"] for v in server.client().list_object_versions(Bucket=bucket)["Versions"]}
    assert set(bad) <= listed  # the server kept the keys as given
    b = before(repo)
    outside_before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    now = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=30))
    r = repo.run("dr.restore", "evil", now)
    assert_clean_refusal(r, "5 keys were NOT restored", "is in the future")
    for key, reason in bad.items():
        assert key in r.stderr or repr(key) in r.stderr
        assert reason in r.stdout + r.stderr
    # the other keys were restored; nothing landed anywhere else
    hold = repo.path / "_restore" / f"evil-{compact_utc(datetime.fromisoformat(now))}"
    assert local_tree(hold) == {"ok.txt": b"fine", "x/y.txt": b"under x/"}
    created = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p not in hold.parents)
    new = {str(p) for p in created} - {str(p) for p in outside_before}
    assert all(s.startswith(f"{repo.path.name}/_restore/") for s in new), new
    assert not list(tmp_path.rglob("escape.txt"))
    receipt = json.loads((repo.path / "_restore" / f"{hold.name}.json").read_text())
    assert {x["key"] for x in receipt["refused"]} == set(bad)
    assert_untouched(repo, b)


def test_bad_timestamps_are_refused_before_any_request(moto_server, make_repo, fault_proxy_moto):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    put(moto_server, bucket, U + "a.txt", b"a")
    cases = {
        "2026-04-15T18:00:00": "has no timezone",
        "yesterday": "is not an ISO 8601 timestamp",
        "2026-02-30T18:00:00Z": "is not a real date and time",
        "2026-04-15": "no time of day and no timezone",
    }
    fault_proxy_moto.clear()
    for ts, needle in cases.items():
        r = repo.run("dr.restore", UNIT, ts)
        assert_clean_refusal(r, needle)
        # every refusal shows the accepted form
        assert "Z" in r.stderr and ("e.g." in r.stderr or "add one:" in r.stderr), r.stderr
    assert sum(fault_proxy_moto.counts.values()) == 0
    assert not (repo.path / "_restore").exists()


def test_existing_holding_dir_is_refused_unless_force(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    put(server, bucket, U + "a.txt", b"v1")
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    assert repo.run("dr.restore", UNIT, ts).returncode == 0
    hold = repo.path / "_restore" / f"{UNIT}-{compact_utc(datetime.fromisoformat(ts))}"
    (hold / "a.txt").write_bytes(b"edited by the operator")
    (hold / "scratch.txt").write_bytes(b"operator's note")
    b = before(repo)
    r = repo.run("dr.restore", UNIT, ts)
    assert_clean_refusal(r, "exists already", "--force")
    assert (hold / "scratch.txt").exists()
    r = repo.run("dr.restore", UNIT, ts, "--force")
    assert r.returncode == 0, r.stderr
    assert local_tree(hold) == {"a.txt": b"v1"}
    assert not [p for p in (repo.path / "_restore").iterdir() if p.name.startswith(".")]  # no staging left
    assert_untouched(repo, b)


def test_holding_dir_must_be_ignored_by_git_and_denied_and_real(moto_server, make_repo, fault_proxy_moto, tmp_path):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    put(moto_server, bucket, U + "a.txt", b"a")
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    fault_proxy_moto.clear()
    (repo.path / ".gitignore").write_text("*.pyc\n")
    r = repo.run("dr.restore", UNIT, ts)
    assert_clean_refusal(r, "not ignored by git", "/_restore/")
    # a .gitignore inside the restore dir counts, as it does for git
    (repo.path / "_restore").mkdir()
    (repo.path / "_restore" / ".gitignore").write_text("*\n")
    repo.write_config(sync_deny=["state/tmp/**"])
    r = repo.run("dr.restore", UNIT, ts)
    assert_clean_refusal(r, "not covered by dr.sync_deny", '"_restore/**"')
    repo.write_config(sync_deny=["_restore/**"])
    # a symlinked restore dir would put the holding dir outside the repo
    (repo.path / "_restore" / ".gitignore").unlink()
    (repo.path / "_restore").rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo.path / "_restore").symlink_to(outside, target_is_directory=True)
    (repo.path / ".gitignore").write_text("_restore\n")
    r = repo.run("dr.restore", UNIT, ts)
    assert_clean_refusal(r, "is a symlink")
    assert list(outside.iterdir()) == []
    assert sum(fault_proxy_moto.counts.values()) == 0


def test_nothing_at_ts_and_unknown_unit_are_refused(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    vid = put(server, bucket, U + "a.txt", b"a")
    put(server, bucket, "state/skills/beta/b.txt", b"b")
    born = last_modified(server, bucket, U + "a.txt", vid)
    b = before(repo)
    r = repo.run("dr.restore", UNIT, iso_utc(born - timedelta(days=1)))
    assert_clean_refusal(r, f"unit {UNIT} had no objects at", "created later", iso_utc(born))
    r = repo.run("dr.restore", "snapy", iso_utc(born))
    assert_clean_refusal(r, "no keys under", "units in the bucket: beta, snappy")
    # a unit whose every key was deleted before TS is just as empty
    server.client().delete_object(Bucket=bucket, Key="state/skills/beta/b.txt")
    r = repo.run("dr.restore", "beta", iso_utc(datetime.now(timezone.utc) + timedelta(seconds=5)))
    assert_clean_refusal(r, "1 keys were deleted")
    assert not (repo.path / "_restore").exists() or not list((repo.path / "_restore").iterdir())
    assert repo.index_bytes() == b.index and live_tree(repo) == b.tree


def test_path_and_all_scopes(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    files = {
        "state/notes/readme.txt": b"notes\n",
        "state/notes/sub/deep.md": b"# deep\n",
        "state/notes-other/x.txt": b"not under state/notes/\n",
        "state/skills/alpha/a.txt": b"alpha\n",
        "state/log/snapshots.ndjson": b"",
    }
    repo.seed(files)
    put(server, bucket, "snapshots/2026-01-01T00:00:00Z-old/state/notes/readme.txt", b"a snapshot, not live")
    ts_dt = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    ts = iso_utc(ts_dt)
    (repo.path / "state/notes/readme.txt").write_bytes(b"notes, edited live\n")
    b = before(repo)

    # --path with a trailing slash: a directory, names relative to it
    r = repo.run("dr.restore", "--path", "state/notes/", ts, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    hold = holding(repo, "_path-state-notes", ts_dt)
    assert res["holding_dir"] == f"_restore/{hold.name}/"
    assert local_tree(hold) == {"readme.txt": b"notes\n", "sub/deep.md": b"# deep\n"}
    assert res["diff"]["modified"] == ["readme.txt"] and res["diff"]["unchanged"] == ["sub/deep.md"]

    # the flag after TS works too; a single file by its path
    r = repo.run("dr.restore", ts, "--path=state/notes/readme.txt", "--json")
    assert r.returncode == 0, r.stderr
    assert local_tree(holding(repo, "_path-state-notes-readme.txt", ts_dt)) == {"readme.txt": b"notes\n"}

    # --all: every live key (snapshots excluded), named relative to the root
    r = repo.run("dr.restore", "--all", ts, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert local_tree(holding(repo, "_all", ts_dt)) == files
    assert res["diff"]["modified"] == ["state/notes/readme.txt"]
    # live files the guard never pushes (tasks.py, invoke.yaml) are not compared
    assert "tasks.py" in res["diff"]["ignored_live"] and "tasks.py" not in res["diff"]["removed"]

    # the stand-alone program is the same task
    r = repo.dr("restore", "alpha", ts)
    assert r.returncode == 0, r.stderr
    assert local_tree(holding(repo, "alpha", ts_dt)) == {"a.txt": b"alpha\n"}

    # exactly one scope
    r = repo.run("dr.restore", "alpha", ts, "--all")
    assert_clean_refusal(r, "exactly one")
    r = repo.run("dr.restore", "--path", "../etc/", ts)
    assert_clean_refusal(r, "'.' or '..' segment")
    r = repo.run("dr.restore", "--path", "snapshots/", ts)
    assert_clean_refusal(r, "not live state")
    assert_untouched(repo, b)


def test_request_counts_pin_a_read_only_restore(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    files = {f"{U}f{i:02d}.txt": f"file {i}\n".encode() for i in range(12)}
    repo.seed(files)
    server.client().delete_object(Bucket=bucket, Key=f"{U}f00.txt")
    cfg = repo.cfg()
    b = before(repo)
    with count_requests() as counts:
        result = restore_at(cfg, datetime.now(timezone.utc) + timedelta(seconds=2), unit=UNIT)
    assert result.ok and len(result.restored) == 11 and result.deleted_at_ts == ["f00.txt"]
    assert counts["ListObjectVersions"] == 1
    assert counts["GetObject"] == 11
    assert counts["GetBucketVersioning"] == 1
    assert set(counts) <= READ_ONLY_OPS, counts
    assert_untouched(repo, b)


def test_transient_get_failures_are_retried_and_a_permanent_one_leaves_nothing(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = {f"{U}f{i}.txt": f"file {i}\n".encode() * 100 for i in range(6)}
    for k, v in files.items():
        put(server, bucket, k, v)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3))
    fault_proxy.add(Rule(op="GetObject", fault=503, times=3))
    fault_proxy.add(Rule(op="GetObject", fault="reset", times=2))
    fault_proxy.add(Rule(op="ListObjectVersions", fault=500, times=1))
    r = repo.run("dr.restore", UNIT, ts)
    assert r.returncode == 0, r.stderr
    assert fault_proxy.faults["GetObject:503"] == 3 and fault_proxy.faults["GetObject:reset"] == 2
    hold = repo.path / "_restore" / f"{UNIT}-{compact_utc(datetime.fromisoformat(ts))}"
    assert local_tree(hold) == {k[len(U) :]: v for k, v in files.items()}

    fault_proxy.clear()
    fault_proxy.add(Rule(op="GetObject", key="f3.txt", fault=403, times=-1))
    r = repo.run("dr.restore", UNIT, ts, "--force")
    assert_clean_refusal(r, "f3.txt", "AccessDenied", "nothing was left in _restore/")
    # the earlier holding dir is still there, untouched; no staging dir is left
    assert local_tree(hold) == {k[len(U) :]: v for k, v in files.items()}
    assert sorted(p.name for p in (repo.path / "_restore").iterdir()) == [hold.name, f"{hold.name}.json"]


def test_unversioned_bucket_restores_what_is_there_and_says_so(server, make_repo):
    bucket = new_bucket(server, versioned=False)
    repo = make_repo(server, bucket)
    put(server, bucket, U + "a.txt", b"only the current object")
    r = repo.run("dr.restore", UNIT, iso_utc(datetime.now(timezone.utc) + timedelta(seconds=2)))
    assert r.returncode == 0, r.stderr
    assert "versioning is not enabled" in r.stderr


# ---------------------------------------------------------------------- pagination (moto only)
def test_more_than_1000_versions_and_a_delete_marker_only_page(moto_server, make_repo):
    """One key with 1,061 entries: its 1,010 newest are delete markers, so the first
    ListObjectVersions page holds nothing else and the key's versions continue on
    the next page (~1,100 entries in all, in a bucket of its own)."""
    server = moto_server
    bucket = new_bucket(server)
    repo = make_repo(server, bucket)
    c = server.client(max_pool_connections=16)
    key = U + "a.txt"
    put(server, bucket, U + "z.txt", b"z0")
    t0 = last_modified(server, bucket, key, put(server, bucket, key, b"a0"))
    wait_past(server, t0)
    vid = ""
    for i in range(1, 51):
        vid = put(server, bucket, key, f"a{i}".encode())
    t1 = last_modified(server, bucket, key, vid)
    wait_past(server, t1)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: c.delete_object(Bucket=bucket, Key=key), range(1010)))
    pages = list(c.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=U))
    assert len(pages) == 2
    assert not pages[0].get("Versions") and len(pages[0]["DeleteMarkers"]) == 1000  # a marker-only page
    assert {v["Key"] for v in pages[1]["Versions"]} == {key, U + "z.txt"}  # a.txt continues here
    cfg = repo.cfg()
    b = before(repo)
    with count_requests() as counts:
        at_t0 = restore_at(cfg, t0, unit=UNIT)
    assert counts["ListObjectVersions"] == 2
    assert local_tree(Path(at_t0.holding_path)) == {"a.txt": b"a0", "z.txt": b"z0"}
    r = repo.run("dr.restore", UNIT, iso_utc(t1), "--json")
    assert r.returncode == 0, r.stderr
    assert local_tree(holding(repo, UNIT, t1)) == {"a.txt": b"a50", "z.txt": b"z0"}
    now = restore_at(cfg, datetime.now(timezone.utc) + timedelta(seconds=5), unit=UNIT)
    assert local_tree(Path(now.holding_path)) == {"z.txt": b"z0"} and now.deleted_at_ts == ["a.txt"]
    assert_untouched(repo, b)


def test_python_api_refusals_raise_dr_error(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    cfg = repo.cfg()
    with pytest.raises(DrError, match="no timezone"):
        restore_at(cfg, datetime(2026, 4, 15, 18, 0), unit=UNIT)
    with pytest.raises(DrError, match="exactly one"):
        restore_at(cfg, "2026-04-15T18:00:00Z")
    with pytest.raises(DrError, match="not a unit name"):
        restore_at(cfg, "2026-04-15T18:00:00Z", unit="a/b")


# ---------------------------------------------------------------------- the awscrt request path
ODD_KEYS = {
    "sp ace.txt": b"space",
    "plus+sign.txt": b"plus",
    "pct%2Fnot-a-slash.txt": b"percent",
    "caf\u00e9/\u2713 ok.txt": "unicode \u2713".encode(),
    "q?mark&amp=1.txt": b"query-looking",
    "empty.txt": b"",
    "tilde~.txt": b"x" * 70_000,
}


@pytest.mark.parametrize("client", ["crt", "classic"])
def test_both_request_paths_restore_odd_keys_byte_for_byte(server, bucket, make_repo, fault_proxy, client):
    """Keys that need percent-encoding, an empty object, and one GET per non-empty object, counted at the server."""
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url, transfer_client=client)
    vids = {name: put(server, bucket, U + name, data) for name, data in ODD_KEYS.items()}
    t = max(last_modified(server, bucket, U + n, vids[n]) for n in ODD_KEYS)
    wait_past(server, t)
    for name in ("sp ace.txt", "tilde~.txt"):  # a newer version that must NOT be restored
        put(server, bucket, U + name, b"too new")
    ts = iso_utc(t)
    fault_proxy.counts.clear()
    r = repo.run("dr.restore", UNIT, ts, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert local_tree(Path(out["holding_path"])) == ODD_KEYS
    assert fault_proxy.counts["GetObject"] == len([d for d in ODD_KEYS.values() if d])
    import hashlib

    receipt = json.loads(Path(out["holding_path"] + ".json").read_text())
    shas = {f["name"]: f["sha256"] for f in receipt["versions"]}
    assert shas == {n: hashlib.sha256(d).hexdigest() for n, d in ODD_KEYS.items()}


@pytest.mark.rgw
def test_crt_path_over_https_with_a_private_ca(rgw_server, make_repo):
    bucket = new_bucket(rgw_server)
    repo = make_repo(rgw_server, bucket, endpoint_url=rgw_server.https_endpoint)
    files = {f"{U}f{i}.txt": f"tls {i}\n".encode() for i in range(5)}
    for k, v in files.items():
        put(rgw_server, bucket, k, v)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    time.sleep(2.1)
    r = repo.run("dr.restore", UNIT, ts, env={"AWS_CA_BUNDLE": rgw_server.ca_bundle})
    assert r.returncode == 0, r.stderr
    assert local_tree(holding(repo, UNIT, datetime.fromisoformat(ts))) == {k[len(U) :]: v for k, v in files.items()}
    r = repo.run("dr.restore", UNIT, ts, "--force", env={"AWS_CA_BUNDLE": ""})
    assert_clean_refusal(r, "cannot set up the S3 client", "AWS_")
    # without the CA the TLS handshake fails, clearly, and nothing is left behind
    r = repo.run("dr.restore", UNIT, ts, "--force", env={"AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert local_tree(holding(repo, UNIT, datetime.fromisoformat(ts))) == {k[len(U) :]: v for k, v in files.items()}


def test_unknown_transfer_client_is_a_config_error(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, transfer_client="fast")
    r = repo.run("dr.restore", UNIT, "2026-04-15T18:00:00Z")
    assert_clean_refusal(r, "transfer_client", '"crt"', '"classic"')


@pytest.mark.parametrize("client", ["crt", "classic"])
def test_long_legal_names_restore_and_a_name_the_disk_refuses_is_reported(server, bucket, make_repo, client):
    """A 244-byte name is legal (NAME_MAX is 255): its temp file must fit too. S3 takes a 300-byte name
    segment, the file system does not (ENAMETOOLONG): that key is refused and named, the rest restored."""
    repo = make_repo(server, bucket, transfer_client=client)
    big = bytes(range(256)) * (5 * 1024)  # past awscrt's in-memory size: written through a temp file
    files = {
        "ok.txt": b"small body\n",
        "l" * 240 + ".txt": b"small, long name\n",
        "b" * 240 + ".bin": big,
        "deep/" + "\u00e9" * 120 + "a.md": b"244 bytes of UTF-8\n",
    }
    too_long = "n" * 300 + ".txt"
    for name, data in files.items():
        assert name == "ok.txt" or len(name.rsplit("/", 1)[-1].encode()) == 244
        put(server, bucket, U + name, data)
    put(server, bucket, U + too_long, b"no file system here takes this name\n")
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    time.sleep(2.1)
    r = repo.run("dr.restore", UNIT, ts, "--json")
    assert_clean_refusal(r, "1 keys were NOT restored", too_long[:40], "File name too long")
    out = json.loads(r.stdout)
    assert local_tree(Path(out["holding_path"])) == files
    assert [x["key"] for x in out["refused"]] == [U + too_long]
    assert "File name too long" in out["refused"][0]["reason"]
    # no staging dir or temp file left beside the holding dir
    assert sorted(p.name for p in (repo.path / "_restore").iterdir()) == sorted(
        [Path(out["holding_path"]).name, Path(out["holding_path"]).name + ".json"]
    )


def test_a_write_that_fails_names_the_file_as_the_user_sees_it(server, bucket, make_repo, monkeypatch):
    """A full disk while the awscrt path writes a checked body: the error names `deep/c.md`, not a temp basename."""
    import errno

    from dr_tasks.transport import crt_engine as crt

    repo = make_repo(server, bucket)
    for k in (U + "ok.txt", U + "deep/c.md"):
        put(server, bucket, k, b"small body\n")
    real_write = crt._write_file

    def full_disk(path: Path, data: bytes, mtime: float | None) -> None:
        if path.name == "c.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data, mtime)

    monkeypatch.setattr(crt, "_write_file", full_disk)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3))
    with pytest.raises(DrError) as caught:
        restore_at(repo.cfg(), ts, unit=UNIT)
    assert f"cannot write deep/c.md (from {U}deep/c.md): No space left on device" in caught.value.message
    assert not (repo.path / "_restore").exists() or list((repo.path / "_restore").iterdir()) == []


def test_the_report_names_a_denied_live_file_and_a_line_ending_only_change(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, sync_deny=["_restore/**", "state/skills/alpha/secret*"])
    repo.seed({"state/skills/alpha/a.txt": b"one\ntwo\n", "state/skills/alpha/secret.txt": b"at TS\n"})
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    (repo.path / "state/skills/alpha/a.txt").write_bytes(b"one\r\ntwo\r\n")
    (repo.path / "state/skills/alpha/secret.txt").write_bytes(b"edited live, never pushed\n")
    r = repo.run("dr.restore", "alpha", ts)
    assert r.returncode == 0, r.stderr
    assert "secret.txt: not compared (a live file of that name exists" in r.stdout
    assert "a.txt (text):\n  (differs only in line endings or the final newline)" in r.stdout


@pytest.mark.parametrize("client", ["crt", "classic"])
def test_a_version_from_before_versioning_is_fetched_as_itself(server, make_repo, client):
    # Keys written before versioning was turned on list with VersionId "null";
    # a GET without it serves the current version instead.
    bucket = new_bucket(server, versioned=False)
    repo = make_repo(server, bucket, transfer_client=client)
    key = "state/skills/alpha/a.txt"
    put(server, bucket, key, b"written before versioning\n")
    server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    entries = server.client().list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    t = entries[0]["LastModified"]
    wait_past(server, t)
    put(server, bucket, key, b"written after, and longer than the first\n")
    r = repo.run("dr.restore", "alpha", iso_utc(t), "--json")
    assert r.returncode == 0, r.stderr
    assert local_tree(holding(repo, "alpha", t)) == {"a.txt": b"written before versioning\n"}


def test_a_snapshot_copies_the_listed_pre_versioning_version_not_a_later_write(server, make_repo):
    from dr_tasks import take_snapshot
    from dr_tasks.ops.snapshot import plan_snapshot

    bucket = new_bucket(server, versioned=False)
    repo = make_repo(server, bucket)
    key = "state/skills/alpha/a.txt"
    put(server, bucket, key, b"listed\n")
    server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    plan = plan_snapshot(repo.cfg(), "nullv")
    put(server, bucket, key, b"written while the snapshot copies\n")  # after the listing
    snap = take_snapshot(repo.cfg(), "nullv", plan=plan)
    copied = server.client().get_object(Bucket=bucket, Key=f"snapshots/{snap.id}/{key}")["Body"].read()
    assert copied == b"listed\n"


def _stamp(
    xml: bytes, kind: str, name: str, value: str | None = None, latest: bool = False
) -> tuple[bytes, str | None]:
    """The LastModified of the `kind` entry whose key ends in `name` (only a latest one if `latest`), set to `value`."""
    block = re.compile(rb"<" + kind.encode() + rb">.*?</" + kind.encode() + rb">", re.S)
    found: list[str] = []

    def edit(m: re.Match[bytes]) -> bytes:
        b = m.group(0)
        if not re.search(rb"<Key>[^<]*" + re.escape(name.encode()) + rb"</Key>", b):
            return b
        if latest and b"<IsLatest>true</IsLatest>" not in b:
            return b
        found.append(re.search(rb"<LastModified>([^<]*)</LastModified>", b).group(1).decode())
        if value is None:
            return b
        return re.sub(rb"<LastModified>[^<]*</LastModified>", f"<LastModified>{value}</LastModified>".encode(), b)

    return block.sub(edit, xml), (found[0] if found else None)


def test_the_servers_version_order_wins_over_skewed_timestamps_and_the_report_says_so(
    server, bucket, make_repo, fault_proxy
):
    """Restore must take the first entry in the server's order, not the newest LastModified.

    A proxy gives the current version of cur.txt a LastModified earlier than
    the version it replaced (as S3 does for a multipart upload: its start
    time), and gives gone.txt's delete marker its version's exact instant.
    Re-sorting by time restored the overwritten bytes, silently.
    """
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    put(server, bucket, f"{U}cur.txt", b"overwritten\n")
    put(server, bucket, f"{U}cur.txt", b"current\n")
    put(server, bucket, f"{U}gone.txt", b"deleted\n")
    server.client().delete_object(Bucket=bucket, Key=f"{U}gone.txt")
    put(server, bucket, f"{U}plain.txt", b"plain\n")

    def rewrite(op: str, body: bytes) -> bytes:
        if op != "ListObjectVersions":
            return body
        body, _ = _stamp(body, "Version", "cur.txt", "2001-01-01T00:00:00.000Z", latest=True)
        _, written = _stamp(body, "Version", "gone.txt")
        if written is not None:
            body, _ = _stamp(body, "DeleteMarker", "gone.txt", written)
        return body

    fault_proxy.rewrite = rewrite
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1))
    r = repo.run("dr.restore", UNIT, ts, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    holding = repo.path / result["holding_dir"]
    assert (holding / "cur.txt").read_bytes() == b"current\n"
    assert (holding / "plain.txt").read_bytes() == b"plain\n"
    assert not (holding / "gone.txt").exists() and result["deleted_at_ts"] == ["gone.txt"]
    ambiguous = {a["key"]: a for a in result["ambiguous"]}
    assert set(ambiguous) == {f"{U}cur.txt", f"{U}gone.txt"}, result["ambiguous"]
    cur = ambiguous[f"{U}cur.txt"]
    assert "1 entry listed as older has a later LastModified" in cur["reason"]
    assert cur["chosen"].endswith(" 2001-01-01T00:00:00Z") and len(cur["others"]) == 1
    gone = ambiguous[f"{U}gone.txt"]
    assert "a write and a delete share its LastModified" in gone["reason"] and "(delete marker)" in gone["chosen"]
    # said on the terminal too, one line per key, and kept in the receipt
    said = [line for line in r.stderr.splitlines() if "version order:" in line]
    assert len(said) == 2 and any("cur.txt" in line and "chose" in line for line in said), r.stderr
    receipt = json.loads((repo.path / result["receipt"]).read_text())
    assert {a["key"] for a in receipt["ambiguous"]} == set(ambiguous)


SECRET = b"aws_secret_access_key = NEVER-IN-A-DIFF\n"


def test_the_diff_never_follows_a_live_symlink_out_of_the_repo(server, bucket, make_repo, tmp_path):
    """A live file, directory or whole unit that is a symlink is shown as one; its target is never read."""
    repo = make_repo(server, bucket)
    outside = tmp_path / "home"
    (outside / "unit").mkdir(parents=True)
    (outside / "credentials").write_bytes(SECRET)
    (outside / "unit" / "creds.txt").write_bytes(SECRET)
    repo.seed(
        {
            "state/skills/alpha/a.txt": b"a at TS\n",
            "state/skills/alpha/b.txt": b"b at TS\n",
            "state/skills/alpha/deep/c.txt": b"c at TS\n",
            "state/skills/gamma/creds.txt": b"creds at TS\n",
        }
    )
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    time.sleep(2.1)
    alpha = repo.path / "state/skills/alpha"
    (alpha / "a.txt").unlink()
    (alpha / "a.txt").symlink_to(outside / "credentials")
    (alpha / "b.txt").unlink()
    (alpha / "b.txt").symlink_to("a.txt")  # inside the repo, to a symlink: still not followed
    (alpha / "deep" / "c.txt").unlink()
    (alpha / "deep").rmdir()
    (alpha / "deep").symlink_to(outside / "unit")
    gamma = repo.path / "state/skills/gamma"
    (gamma / "creds.txt").unlink()
    gamma.rmdir()
    gamma.symlink_to(outside / "unit")

    for unit, expect in (("alpha", ["a.txt", "b.txt"]), ("gamma", [])):
        plain = repo.run("dr.restore", unit, ts)
        assert plain.returncode == 0, plain.stderr
        js = repo.run("dr.restore", unit, ts, "--json", "--force", "--full")
        assert js.returncode == 0, js.stderr
        for r in (plain, js):
            assert b"NEVER-IN-A-DIFF".decode() not in r.stdout + r.stderr
        d = json.loads(js.stdout)["diff"]
        assert sorted(f["name"] for f in d["files"] if f["kind"] == "symlink") == expect
        for f in d["files"]:
            assert f["kind"] == "symlink"
            assert f["live"]["symlink"] in (str(outside / "credentials"), "a.txt")
        if unit == "alpha":
            assert "a.txt (symlink, not followed):" in plain.stdout
            assert f"  live   symlink -> {outside / 'credentials'}" in plain.stdout
            assert "deep" in d["live_symlinks"]
        else:
            assert d["live_symlinks"] == [""] and d["modified"] == [] and d["added"] == ["creds.txt"]
            assert "is a symlink, not followed" in plain.stdout


CASE_KEYS = {
    "README.md": b"upper\n",
    "Readme.md": b"mixed\n",
    "caf\u00e9.txt": b"NFC\n",  # one code point
    "cafe\u0301.txt": b"NFD\n",  # e + combining acute: the same name once normalized
    "docs/a.md": b"lower dir\n",
    "Docs/A.md": b"upper dir\n",
    "alone.txt": b"no twin\n",
    "Guide": b"a file\n",
    "guide/intro.md": b"under a directory of that name, in lower case\n",
    "Img/p.png": b"under a directory\n",
    "img": b"a file named like it\n",
    "Notes/x.md": b"one directory in two spellings: no file in common\n",
    "notes/y.md": b"so nothing is lost\n",
}


def test_keys_that_collide_under_case_folding_or_normalization_are_reported(server, bucket, make_repo):
    """On a file system that tells the names apart (Linux) all are restored, and the report names each pair."""
    repo = make_repo(server, bucket)
    for name, data in CASE_KEYS.items():
        put(server, bucket, U + name, data)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    time.sleep(2.1)
    r = repo.run("dr.restore", UNIT, ts, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert local_tree(Path(out["holding_path"])) == CASE_KEYS
    assert sorted(map(tuple, out["name_collisions"])) == [
        (U + "Docs/A.md", U + "docs/a.md"),
        (U + "Guide", U + "guide/intro.md"),
        (U + "Img/p.png", U + "img"),
        (U + "README.md", U + "Readme.md"),
        (U + "cafe\u0301.txt", U + "caf\u00e9.txt"),
    ]
    for a, b in (("README.md", "Readme.md"), ("Docs/A.md", "docs/a.md")):
        assert f"{U}{a}" in r.stderr and f"{U}{b}" in r.stderr
    assert "case-insensitive" in r.stderr
    assert out["refused"] == []


def test_on_a_case_insensitive_file_system_the_later_twin_is_refused(server, bucket, make_repo, monkeypatch):
    """Where the holding dir's file system folds names, one file per folded name: the others are refused, listed."""
    from dr_tasks.ops import restore as restore_mod

    repo = make_repo(server, bucket)
    for name, data in CASE_KEYS.items():
        put(server, bucket, U + name, data)
    probed: list[Path] = []
    monkeypatch.setattr(restore_mod, "folds_names", lambda path: probed.append(path) or True)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    time.sleep(2.1)
    result = restore_at(repo.cfg(), ts, unit=UNIT)
    assert probed and not result.ok
    refused = {r.key: r.reason for r in result.refused}
    assert set(refused) == {U + n for n in ("Readme.md", "caf\u00e9.txt", "docs/a.md", "guide/intro.md", "img")}
    assert "same file as" in refused[U + "Readme.md"] and U + "README.md" in refused[U + "Readme.md"]
    tree = local_tree(Path(result.holding_path))
    assert tree == {n: d for n, d in CASE_KEYS.items() if U + n not in refused}


def test_no_collision_no_probe(moto_server, make_repo, monkeypatch):
    from dr_tasks.ops import restore as restore_mod

    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    put(moto_server, bucket, U + "a.txt", b"a")
    monkeypatch.setattr(restore_mod, "folds_names", lambda path: pytest.fail("probed without a collision"))
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2))
    time.sleep(2.1)
    assert restore_at(repo.cfg(), ts, unit=UNIT).name_collisions == []
