"""Bytes are accepted on proof, never on a guess (issue 15): end to end, on moto and Ceph RGW.

A recorded ETag (exact equality), or the bytes re-read and hashed to a
recorded value. Never an ETag's shape, never a size alone.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dr_tasks.timeparse import iso_utc
from tests.conftest import assert_clean_refusal, bucket_state, live_objects
from tests.e2e.test_backup import configure_backup
from tests.e2e.test_rollback import live_state, put, seeded_with_snapshot, snapshot_state
from tests.support.faultproxy import Rule

MIB = 1024 * 1024
BIG_KEY = "state/skills/alpha/big.bin"


def multipart_put(client: Any, bucket: str, key: str, data: bytes, part: int = 5 * MIB) -> str:
    """`data` written as a multipart upload of `part`-sized parts; its (multipart) ETag."""
    up = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for n, start in enumerate(range(0, len(data), part), 1):
        r = client.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=data[start : start + part])
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    done = client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
    return str(done.get("ETag") or client.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def verify_marks(repo: Any) -> tuple[Any, dict[str, str]]:
    r = repo.run("dr.verify")
    assert "Traceback" not in r.stderr + r.stdout
    marks = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("PASS", "FAIL"):
            marks[parts[1]] = parts[0]
    return r, marks


# ---------------------------------------------------------------------- item 2: rollback and verify
def test_rollback_refuses_a_snapshot_object_replaced_by_same_size_multipart_bytes(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    c = server.client()
    good = os.urandom(6 * MIB)
    c.put_object(Bucket=bucket, Key=BIG_KEY, Body=good)  # one PutObject: its ETag is its MD5
    row, _ = seeded_with_snapshot(repo)
    snap_key = f"snapshots/{row['id']}/{BIG_KEY}"
    tampered = multipart_put(c, bucket, snap_key, os.urandom(6 * MIB))
    assert "-" in tampered
    put(repo, BIG_KEY, b"a bad day")  # so the rollback wants to copy it back

    before = (repo.index_bytes(), bucket_state(server, bucket))
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert_clean_refusal(r, "not proven intact", BIG_KEY, "nothing was changed")
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before
    assert live_state(repo)[BIG_KEY] == b"a bad day"

    v, marks = verify_marks(repo)
    assert v.returncode == 1 and marks["snapshot"] == "FAIL", v.stdout
    assert BIG_KEY in v.stdout


def test_rollback_and_verify_accept_a_copy_of_a_multipart_object_by_its_recorded_etag(server, bucket, make_repo):
    """AWS and moto give a server-side copy of a multipart object a new ETag: the snapshot records it."""
    repo = make_repo(server, bucket)
    c = server.client()
    good = os.urandom(6 * MIB)
    multipart_put(c, bucket, BIG_KEY, good)
    row, _ = seeded_with_snapshot(repo)
    manifest = json.loads(c.get_object(Bucket=bucket, Key=row["manifest"])["Body"].read())
    entry = next(o for o in manifest["objects"] if o["key"] == BIG_KEY)
    listed = c.head_object(Bucket=bucket, Key=f"snapshots/{row['id']}/{BIG_KEY}")["ETag"].strip('"')
    assert entry["copy_etag"] == listed.lower()
    put(repo, BIG_KEY, b"a bad day")

    v, marks = verify_marks(repo)
    assert marks["snapshot"] == "PASS", v.stdout
    assert "re-read" not in v.stdout  # proven by the recorded ETag, no GET
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert r.returncode == 0, r.stderr
    assert live_state(repo)[BIG_KEY] == good
    assert snapshot_state(repo, row["id"])[BIG_KEY] == good


def test_a_snapshot_object_rewritten_without_a_record_is_accepted_only_when_its_bytes_hash_right(
    server, bucket, make_repo
):
    """A single-PUT original whose snapshot copy was rewritten in parts: re-read, its MD5 is the recorded ETag."""
    repo = make_repo(server, bucket)
    c = server.client()
    good = os.urandom(6 * MIB)
    c.put_object(Bucket=bucket, Key=BIG_KEY, Body=good)
    row, _ = seeded_with_snapshot(repo)
    multipart_put(c, bucket, f"snapshots/{row['id']}/{BIG_KEY}", good)  # the same bytes, in parts
    put(repo, BIG_KEY, b"a bad day")

    v, marks = verify_marks(repo)
    assert marks["snapshot"] == "PASS", v.stdout
    assert "1 re-read and hashed" in v.stdout
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert r.returncode == 0, r.stderr
    assert live_objects(server, bucket, BIG_KEY)[BIG_KEY] == good


# ---------------------------------------------------------------------- item 3: recover's "same"
def test_recover_replaces_a_big_object_overwritten_with_same_size_bytes(server, bucket, make_repo, moto2):
    """Over the part size the two copies' ETags never match: the backup state's record decides, not the size."""
    repo = make_repo(server, bucket)
    repo.seed()
    c = server.client()
    good = os.urandom(12 * MIB)
    c.put_object(Bucket=bucket, Key=BIG_KEY, Body=good)
    configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    c.put_object(Bucket=bucket, Key=BIG_KEY, Body=os.urandom(12 * MIB))  # same size, other bytes

    r = repo.run("dr.recover", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["differs"] == [BIG_KEY] and plan["unverified"] == [], plan

    r = repo.run("dr.recover", "--apply", "--overwrite", "--json")
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["copied"] == 1 and done["to_copy"] == [BIG_KEY], done
    assert live_objects(server, bucket, BIG_KEY)[BIG_KEY] == good

    # the copy it wrote is recorded: the next run proves it the same, copies nothing
    again = json.loads(repo.run("dr.recover", "--apply", "--json").stdout)
    assert again["copied"] == 0 and again["differs"] == [] and again["unverified"] == [], again


def test_recover_reports_a_same_size_key_it_has_no_record_for_as_unverified(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    repo.seed()
    c = server.client()
    c.put_object(Bucket=bucket, Key=BIG_KEY, Body=os.urandom(12 * MIB))
    backup_bucket = configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    # the state lost (its records with it): only the size is left to compare
    moto2.client().delete_object(Bucket=backup_bucket, Key=".dr-tasks/backup-state.json")
    c.put_object(Bucket=bucket, Key=BIG_KEY, Body=os.urandom(12 * MIB))

    r = repo.run("dr.recover", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["unverified"] == [BIG_KEY] and BIG_KEY not in plan["to_copy"], plan
    text = repo.run("dr.recover")
    assert "skipped on their size alone" in text.stderr and BIG_KEY in text.stderr


# ---------------------------------------------------------------------- item 14: a writer thread that raises
def test_a_writer_that_raises_something_other_than_oserror_ends_the_restore(server, bucket, make_repo, monkeypatch):
    """awscrt's small bodies are written on worker threads: any exception there must come back as a failure."""
    from dr_tasks import DrError, restore_at
    from dr_tasks.transport import crt_engine as crt

    repo = make_repo(server, bucket, transfer_client="crt")
    unit = "state/skills/alpha/"
    for name in ("ok.txt", "bad.md"):
        server.client().put_object(Bucket=bucket, Key=unit + name, Body=b"small body\n")
    real_write = crt._write_file

    def broken(path: Path, data: bytes, mtime: float | None) -> None:
        if path.name == "bad.md":
            raise ValueError("embedded null byte")
        real_write(path, data, mtime)

    monkeypatch.setattr(crt, "_write_file", broken)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3))
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            restore_at(repo.cfg(), ts, unit="alpha")
            outcome.append(None)
        except BaseException as err:  # the test reports whatever came out
            outcome.append(err)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the restore hung on a writer thread's exception"
    assert isinstance(outcome[0], DrError), outcome
    assert "bad.md" in outcome[0].message and "ValueError: embedded null byte" in outcome[0].message
    assert not (repo.path / "_restore").exists() or list((repo.path / "_restore").iterdir()) == []


# ---------------------------------------------------------------------- item 6: a 200 that is no copy
@pytest.mark.parametrize("client", ["crt", "classic"])
def test_a_copy_answered_200_without_a_result_is_retried_then_refused(server, bucket, make_repo, fault_proxy, client):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url, transfer_client=client)
    files = repo.seed()
    fault_proxy.add(Rule(op="CopyObject", key="alpha/", fault="200-garbage", times=2))
    r = repo.run("dr.snapshot", "--label=mangled", "--json")
    assert r.returncode == 0, r.stderr
    assert fault_proxy.faults["CopyObject:200-garbage"] == 2
    assert snapshot_state(repo, json.loads(r.stdout)["id"]) == files

    fault_proxy.add(Rule(op="CopyObject", key="beta/blob.bin", fault="200-garbage", times=-1))
    before = repo.index_bytes()
    r = repo.run("dr.snapshot", "--label=never")
    assert_clean_refusal(r, "state/skills/beta/blob.bin", "no index row was written")
    assert repo.index_bytes() == before
    assert not any("never" in k for k in live_objects(server, bucket, "snapshots/"))


# ---------------------------------------------------------------------- recover, then rollback and verify
def test_a_recovered_multipart_snapshot_object_is_accepted_through_recovers_record(server, bucket, make_repo, moto2):
    """Recover rewrites a 12 MiB snapshot object in 8 MiB parts (a new ETag); its record proves it, no re-read."""
    from tests.e2e.test_recover import wipe_bucket

    repo = make_repo(server, bucket)
    c = server.client()
    good = os.urandom(12 * MIB)
    multipart_put(c, bucket, BIG_KEY, good, part=6 * MIB)  # other parts than recover's: another ETag
    row, _ = seeded_with_snapshot(repo)
    configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    wipe_bucket(server, bucket)
    r = repo.run("dr.recover", "--apply", "--create-bucket", "--json")
    assert r.returncode == 0, r.stderr
    snap_key = f"snapshots/{row['id']}/{BIG_KEY}"
    manifest = json.loads(c.get_object(Bucket=bucket, Key=row["manifest"])["Body"].read())
    entry = next(o for o in manifest["objects"] if o["key"] == BIG_KEY)
    now = c.head_object(Bucket=bucket, Key=snap_key)["ETag"].strip('"')
    assert now not in (entry["etag"], entry["copy_etag"])  # rewritten: only the record vouches for it

    v, marks = verify_marks(repo)
    assert marks["snapshot"] == "PASS", v.stdout
    assert "re-read" not in v.stdout
    put(repo, BIG_KEY, b"a bad day")
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert r.returncode == 0, r.stderr
    assert live_objects(server, bucket, BIG_KEY)[BIG_KEY] == good

    # the record vouches only for those bytes: same-size others in its place are refused
    multipart_put(c, bucket, snap_key, os.urandom(12 * MIB), part=8 * MIB)
    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good")
    assert_clean_refusal(r, "not proven intact", BIG_KEY)


# ---------------------------------------------------------------------- restore: a multipart object is proven too
def _flip_big_bodies(op: str, data: bytes) -> bytes:
    """One byte of every big GET body changed, its length kept: what only a hash of the bytes can tell."""
    if op != "GetObject" or len(data) < MIB:
        return data
    return data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]


@pytest.mark.parametrize("client", ["crt", "classic"])
def test_restore_refuses_a_multipart_object_damaged_in_transit_at_its_length(
    server, bucket, make_repo, fault_proxy, client
):
    """A multipart ETag is no MD5 of the bytes; its part layout makes it a hash of them all the same."""
    from tests.e2e.test_restore import UNIT, U, holding, last_modified, wait_past

    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url, transfer_client=client)
    c = server.client()
    good = os.urandom(12 * MIB + 12345)
    multipart_put(c, bucket, U + "big.bin", good, part=5 * MIB)
    c.put_object(Bucket=bucket, Key=U + "small.txt", Body=b"small")
    head = c.head_object(Bucket=bucket, Key=U + "big.bin")
    t = last_modified(server, bucket, U + "big.bin", head["VersionId"])
    wait_past(server, t)
    ts = iso_utc(t + timedelta(seconds=1))
    wait_past(server, t + timedelta(seconds=1))

    fault_proxy.rewrite = _flip_big_bodies
    r = repo.run("dr.restore", UNIT, ts)
    assert_clean_refusal(r, "big.bin")
    assert not list((repo.path / "_restore").glob(f"{UNIT}-*/big.bin"))

    fault_proxy.rewrite = None
    r = repo.run("dr.restore", UNIT, ts, "--force")
    assert r.returncode == 0, r.stderr
    hold = holding(repo, UNIT, datetime.fromisoformat(ts))
    assert (hold / "big.bin").read_bytes() == good


@pytest.mark.parametrize("client", ["crt", "classic"])
def test_restore_of_a_multipart_object_in_unusual_parts_is_proven_where_the_server_gives_its_layout(
    server, bucket, make_repo, client
):
    """Parts of 5 MiB + 4 KiB: no uploader's size. moto says where they end (proven); Ceph 16 does not (refused)."""
    from tests.e2e.test_restore import UNIT, U, holding, last_modified, wait_past

    repo = make_repo(server, bucket, transfer_client=client)
    c = server.client()
    good = os.urandom(11 * MIB)
    multipart_put(c, bucket, U + "odd.bin", good, part=5 * MIB + 4096)
    head = c.head_object(Bucket=bucket, Key=U + "odd.bin")
    t = last_modified(server, bucket, U + "odd.bin", head["VersionId"])
    ts = iso_utc(t + timedelta(seconds=1))
    wait_past(server, t + timedelta(seconds=1))
    told = "PartsCount" in c.head_object(Bucket=bucket, Key=U + "odd.bin", PartNumber=1)
    assert told == (server.name == "moto")  # Ceph 16's RGW ignores partNumber on HEAD
    r = repo.run("dr.restore", UNIT, ts)
    if told:
        assert r.returncode == 0, r.stderr
        assert (holding(repo, UNIT, datetime.fromisoformat(ts)) / "odd.bin").read_bytes() == good
    else:
        assert_clean_refusal(r, "odd.bin", "unusual size", "fetch that version by hand")
