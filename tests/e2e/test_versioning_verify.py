"""`inv dr.versioning` and `inv dr.verify [--deep]` end to end against moto and Ceph RGW.

`dr.verify` is set up passing (versioned bucket with the retention rule, a
snapshot, a fresh cross-region backup on a second moto server, `_restore/`
gitignored and denied), then each check is broken in turn and must be the one
that fails.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from dr_tasks import take_snapshot
from tests.conftest import HostRepo, Server, assert_clean_refusal, bucket_state, new_bucket
from tests.e2e.test_backup import configure_backup

KEEP_LOGS = {
    "ID": "keep-logs",
    "Status": "Enabled",
    "Filter": {"Prefix": "logs/"},
    "Expiration": {"Days": 365},
}


def rules(server: Server, bucket: str) -> list[dict[str, Any]]:
    try:
        return server.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except server.client().exceptions.ClientError:
        return []


def whole_bucket(rule: dict[str, Any]) -> bool:
    # RGW reads `Filter: {Prefix: ""}` back as the legacy rule-level `Prefix: ""`.
    return rule.get("Filter", {}).get("Prefix", rule.get("Prefix")) == "" or rule.get("Filter") == {}


# ---------------------------------------------------------------------- dr.versioning
def test_versioning_on_a_new_bucket_shows_the_fix_then_enables_and_reads_back(server, make_repo):
    bucket = new_bucket(server, versioned=False)
    repo = make_repo(server, bucket, retention_days=45)
    before = bucket_state(server, bucket)
    shown = repo.run("dr.versioning")
    assert_clean_refusal(
        shown, "versioning is not enabled", "no enabled whole-bucket lifecycle rule", "fix: inv dr.versioning --enable"
    )
    assert "versioning never enabled" in shown.stdout
    assert bucket_state(server, bucket) == before

    r = repo.run("dr.versioning", "--enable", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert (
        data["ok"] is True and data["versioning"] == "Enabled" and data["rule"]["ID"] == "dr-tasks-noncurrent-versions"
    )
    c = server.client()
    assert c.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = rules(server, bucket)
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 45 and whole_bucket(rule)

    again = repo.run("dr.versioning")
    assert again.returncode == 0 and "OK: as configured (retention_days 45)" in again.stdout
    assert "noncurrent versions expire after 45 days" in again.stdout


def test_enable_keeps_the_buckets_other_lifecycle_rules_and_fixes_a_wrong_retention(server, make_repo):
    bucket = new_bucket(server)
    c = server.client()
    wrong = {
        "ID": "dr-tasks-noncurrent-versions",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 5},
    }
    c.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [KEEP_LOGS, wrong]})
    repo = make_repo(server, bucket)
    shown = repo.run("dr.versioning")
    assert_clean_refusal(shown, "expires noncurrent versions after 5 days, retention_days is 30")
    assert "keep-logs" in shown.stdout

    r = repo.run("dr.versioning", "--enable")
    assert r.returncode == 0, r.stderr
    got = {x["ID"]: x for x in rules(server, bucket)}
    assert set(got) == {"keep-logs", "dr-tasks-noncurrent-versions"}
    assert got["keep-logs"]["Expiration"]["Days"] == 365
    assert got["keep-logs"].get("Filter", {}).get("Prefix", got["keep-logs"].get("Prefix")) == "logs/"
    assert got["dr-tasks-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    # a second --enable is a no-op that still reads back clean
    assert repo.run("dr.versioning", "--enable").returncode == 0
    assert len(rules(server, bucket)) == 2


def test_a_shorter_foreign_noncurrent_rule_is_flagged(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    foreign = {
        "ID": "someone-elses",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
    }
    moto_server.client().put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [foreign]})
    repo = make_repo(moto_server, bucket)
    r = repo.run("dr.versioning", "--enable")
    assert_clean_refusal(
        r, "rule someone-elses expires noncurrent versions after 3 days, sooner than retention_days 30"
    )
    assert {x["ID"] for x in rules(moto_server, bucket)} == {"someone-elses", "dr-tasks-noncurrent-versions"}


# ---------------------------------------------------------------------- dr.verify
def passing_repo(server: Server, make_repo: Any, backup: Server) -> tuple[HostRepo, str]:
    """A repo whose every verify check passes; returns it and its snapshot id."""
    bucket = new_bucket(server)
    repo = make_repo(server, bucket)
    repo.seed()
    assert repo.run("dr.versioning", "--enable").returncode == 0
    snap = take_snapshot(repo.cfg(), "verified")
    configure_backup(repo, backup)
    r = repo.run("dr.backup")
    assert r.returncode == 0, r.stderr
    return repo, snap.id


def verify(repo: HostRepo, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run dr.verify; returns the process and {check name: PASS/FAIL} from its lines."""
    r = repo.run("dr.verify", *args)
    assert "Traceback" not in r.stderr + r.stdout
    marks: dict[str, str] = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("PASS", "FAIL"):
            marks[parts[1]] = parts[0]
    return r, marks


ALL_PASS = {"versioning": "PASS", "snapshot": "PASS", "index": "PASS", "backup": "PASS", "restore-dir": "PASS"}


def only_failing(marks: dict[str, str], name: str) -> None:
    assert marks == {**ALL_PASS, name: "FAIL"}, marks


def test_verify_passes_then_fails_for_each_check_in_turn(server, make_repo, moto2):
    repo, snap_id = passing_repo(server, make_repo, moto2)
    r, marks = verify(repo)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert marks == ALL_PASS
    assert f"snapshot {snap_id}" in r.stdout and "objects match the manifest" in r.stdout
    c = server.client()

    # versioning: the retention rule removed
    c.delete_bucket_lifecycle(Bucket=repo.bucket)
    r, marks = verify(repo)
    only_failing(marks, "versioning")
    # each failure is printed once: detail and fix on stdout, its name on stderr
    assert "fix: inv dr.versioning --enable" in r.stdout and "checks failed: versioning" in r.stderr
    assert r.stdout.count("fix: inv dr.versioning --enable") == 1 and "fix:" not in r.stderr
    assert repo.run("dr.versioning", "--enable").returncode == 0

    # snapshot: an object of the snapshot lost, another overwritten, one extra
    sdir = f"snapshots/{snap_id}/"
    c.delete_object(Bucket=repo.bucket, Key=sdir + "state/skills/alpha/a.txt")
    c.put_object(Bucket=repo.bucket, Key=sdir + "state/notes/readme.txt", Body=b"overwritten!!")
    c.put_object(Bucket=repo.bucket, Key=sdir + "state/intruder.txt", Body=b"x")
    r, marks = verify(repo)
    only_failing(marks, "snapshot")
    for needle in ("1 missing (state/skills/alpha/a.txt)", "state/notes/readme.txt", "1 not in the manifest"):
        assert needle in r.stdout, r.stdout
    # a newer, good snapshot is what verify looks at next
    import time

    time.sleep(1.1)
    take_snapshot(repo.cfg(), "fresh")
    assert verify(repo)[0].returncode == 0

    # index: a garbled line
    good_index = repo.index_bytes()
    repo.index_path.write_bytes(good_index + b"{garbage\n")
    r, marks = verify(repo)
    only_failing(marks, "index")
    assert "line" in r.stdout and "not valid JSON" in r.stdout
    repo.index_path.write_bytes(good_index)

    # backup: older than max_age_days (a smaller limit makes the same row stale)
    repo.write_config(backup={**repo.config["backup"], "max_age_days": 0.00001})
    r, marks = verify(repo)
    only_failing(marks, "backup")
    assert "stale" in r.stdout and "fix: run `inv dr.backup`" in r.stdout
    repo.write_config(backup={**repo.config["backup"], "max_age_days": 7})

    # restore-dir: not gitignored, then not in sync_deny
    (repo.path / ".gitignore").write_text("*.pyc\n")
    r, marks = verify(repo)
    only_failing(marks, "restore-dir")
    assert "_restore/ is not in .gitignore" in r.stdout
    (repo.path / ".gitignore").write_text("_restore/\n")
    repo.write_config(sync_deny=["*.tmp"])
    r, marks = verify(repo)
    only_failing(marks, "restore-dir")
    assert "dr.sync_deny does not deny _restore/**" in r.stdout
    repo.write_config(sync_deny=["_restore/**"])

    r, marks = verify(repo, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True


def test_verify_with_no_snapshot_and_no_backup_fails_both_and_keeps_going(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    r, marks = verify(repo)
    assert r.returncode == 1
    assert marks["snapshot"] == "FAIL" and marks["backup"] == "FAIL" and marks["versioning"] == "FAIL"
    assert marks["index"] == "PASS" and marks["restore-dir"] == "PASS"
    assert "no snapshot row in the index" in r.stdout and "dr.backup.bucket is not set" in r.stdout
    assert "3 of 5 checks failed" in r.stderr


def test_verify_unknown_id_is_refused(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    assert_clean_refusal(repo.run("dr.verify", "--id=2026-01-01T00:00:00Z-nope"), "unknown snapshot id")


# ---------------------------------------------------------------------- dr.verify --deep
def manifest(repo: HostRepo, snap_id: str) -> dict[str, Any]:
    body = repo.client().get_object(Bucket=repo.bucket, Key=f"snapshots/{snap_id}.manifest.json")["Body"]
    return json.loads(body.read())


def test_deep_records_sha256_then_catches_a_corrupted_object(server, make_repo, moto2):
    repo, snap_id = passing_repo(server, make_repo, moto2)
    assert all(o["sha256"] is None for o in manifest(repo, snap_id)["objects"])
    r, marks = verify(repo, "--deep")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert marks["deep"] == "PASS" and "every byte matches" in r.stdout and "recorded 5 new sha256" in r.stdout
    import hashlib

    from tests.conftest import SAMPLE_FILES

    m = manifest(repo, snap_id)
    assert {o["key"]: o["sha256"] for o in m["objects"]} == {
        k: hashlib.sha256(v).hexdigest() for k, v in SAMPLE_FILES.items()
    }
    assert m["sha256_recorded_at"] and m["id"] == snap_id  # everything else unchanged

    # a second deep run reads every byte again and records nothing new
    r, marks = verify(repo, "--deep", "--json")
    data = json.loads(r.stdout)
    assert r.returncode == 0 and data["deep"]["verified"] == 5 and data["deep"]["recorded"] == 0

    # corrupt one byte of a snapshot object, keeping its size: the recorded
    # sha256 catches it (the plain snapshot check sees the new ETag too)
    key = f"snapshots/{snap_id}/state/skills/beta/blob.bin"
    c = server.client()
    original = c.get_object(Bucket=repo.bucket, Key=key)["Body"].read()
    c.put_object(Bucket=repo.bucket, Key=key, Body=b"\xff" + original[1:])
    r, marks = verify(repo, f"--id={snap_id}", "--deep")
    assert r.returncode == 1
    assert marks["deep"] == "FAIL"
    assert "state/skills/beta/blob.bin: sha256" in r.stdout and "1 of 5 objects do not match" in r.stdout


def test_deep_on_first_read_catches_corruption_and_does_not_record_it(moto_server, make_repo, moto2):
    repo, snap_id = passing_repo(moto_server, make_repo, moto2)
    key = f"snapshots/{snap_id}/state/skills/alpha/a.txt"
    c = moto_server.client()
    data = c.get_object(Bucket=repo.bucket, Key=key)["Body"].read()
    c.put_object(Bucket=repo.bucket, Key=key, Body=data.upper())
    r, marks = verify(repo, "--deep")
    assert r.returncode == 1 and marks["deep"] == "FAIL"
    assert "state/skills/alpha/a.txt: md5" in r.stdout and "(sha256 not recorded)" in r.stdout
    shas = {o["key"]: o["sha256"] for o in manifest(repo, snap_id)["objects"]}
    assert shas["state/skills/alpha/a.txt"] is None  # a corrupted object is never vouched for
    assert sum(1 for v in shas.values() if v) == 4


def test_deep_checks_a_multipart_object_against_its_source_version_on_first_read(server, make_repo):
    bucket = new_bucket(server)
    repo = make_repo(server, bucket)
    repo.seed()
    key = "state/skills/beta/big.bin"
    part = 5 * 1024 * 1024
    c = server.client()
    up = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for n, fill in ((1, b"a"), (2, b"b")):
        etag = c.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=fill * part)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
    snap = json.loads(repo.run("dr.snapshot", "--label=mp", "--json").stdout)
    entry = next(o for o in manifest(repo, snap["id"])["objects"] if o["key"] == "state/skills/beta/big.bin")
    assert "-" in entry["etag"]  # a multipart ETag: not the bytes' MD5

    # tampered before any deep run, same size: the source version tells
    snap_key = f"snapshots/{snap['id']}/{key}"
    good = c.get_object(Bucket=bucket, Key=snap_key)["Body"].read()
    c.put_object(Bucket=bucket, Key=snap_key, Body=b"X" * len(good))
    r = repo.run("dr.verify", "--deep", "--json")
    deep = json.loads(r.stdout)["deep"]
    assert r.returncode == 1 and deep["mismatched"] == [key], deep
    assert "its source version has" in deep["errors"][0]
    shas = {o["key"]: o["sha256"] for o in manifest(repo, snap["id"])["objects"]}
    assert shas[key] is None  # the tampered bytes are never recorded as the reference

    # put right, it matches and is recorded
    c.put_object(Bucket=bucket, Key=snap_key, Body=good)
    r = repo.run("dr.verify", "--deep", "--json")
    deep = json.loads(r.stdout)["deep"]
    assert deep["mismatched"] == [] and deep["unchecked"] == [] and key not in deep["errors"]
    assert {o["key"]: o["sha256"] for o in manifest(repo, snap["id"])["objects"]}[key]


def test_deep_reports_a_multipart_object_whose_source_version_is_gone_as_unchecked(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    key = "state/skills/beta/big.bin"
    c = moto_server.client()
    up = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = c.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=b"z" * 1024)["ETag"]
    c.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    snap = json.loads(repo.run("dr.snapshot", "--label=mp", "--json").stdout)
    doc = manifest(repo, snap["id"])
    entry = next(o for o in doc["objects"] if o["key"] == "state/skills/beta/big.bin")
    c.delete_object(Bucket=bucket, Key=key, VersionId=entry["version_id"])  # expired by retention, say
    # A manifest from before snapshots recorded their copies' ETags: moto's copy
    # of a multipart object has the MD5 of its bytes, which would prove it now.
    for o in doc["objects"]:
        o.pop("copy_etag", None)
    c.put_object(Bucket=bucket, Key=f"snapshots/{snap['id']}.manifest.json", Body=json.dumps(doc).encode())
    r = repo.run("dr.verify", "--deep", "--json")
    deep = json.loads(r.stdout)["deep"]
    assert deep["unchecked"] == [key] and deep["mismatched"] == [], deep
    assert {o["key"]: o["sha256"] for o in manifest(repo, snap["id"])["objects"]}[key] is None
    text = repo.run("dr.verify", "--deep")
    assert "1 multipart objects could not be checked" in text.stdout


# ---------------------------------------------------------------------- a damaged manifest
def _manifest_key(snap_id: str) -> str:
    return f"snapshots/{snap_id}.manifest.json"


DAMAGED_MANIFESTS = {
    "a list": lambda good: [],
    "null": lambda good: None,
    "objects not a list": lambda good: {"objects": 5},
    "objects not a list, right id": lambda good: {**good, "objects": 5},
    "a key that is a list": lambda good: {**good, "objects": [{**good["objects"][0], "key": ["state", "a"]}]},
    "a size that is text": lambda good: {**good, "objects": [{**good["objects"][0], "size": "12"}]},
    "an entry that is a number": lambda good: {**good, "objects": [7]},
    # what the listing bug wrote: the same key and version twice (issue 15, item 1)
    "a key named twice": lambda good: {**good, "objects": good["objects"] + good["objects"][:1]},
}


def test_a_damaged_manifest_fails_its_check_in_one_line_and_the_others_still_run(server, make_repo):
    """`[]`, `null`, `{"objects": 5}`, a list as a key: verify (plain, --json, --deep) tracebacked, none printed."""
    bucket = new_bucket(server)
    repo = make_repo(server, bucket)
    repo.seed()
    assert repo.run("dr.versioning", "--enable").returncode == 0
    snap = take_snapshot(repo.cfg(), "verified")
    c = server.client()
    good = json.loads(c.get_object(Bucket=bucket, Key=_manifest_key(snap.id))["Body"].read())
    for name, damage in DAMAGED_MANIFESTS.items():
        c.put_object(Bucket=bucket, Key=_manifest_key(snap.id), Body=json.dumps(damage(good)).encode())
        for args in ((), ("--deep",)):
            r, marks = verify(repo, *args)
            assert r.returncode == 1, (name, r.stdout, r.stderr)
            assert marks["snapshot"] == "FAIL" and marks["versioning"] == "PASS", (name, marks, r.stdout, r.stderr)
            assert marks["index"] == "PASS" and marks["restore-dir"] == "PASS", (name, marks)
            assert "backup" in marks and (not args or marks["deep"] == "FAIL"), (name, marks)
            line = next(x for x in r.stdout.splitlines() if x.split()[:2] == ["FAIL", "snapshot"])
            assert f"the manifest of snapshot {snap.id}" in line and "damaged" in line, (name, line)
            j = repo.run("dr.verify", "--json", *args)
            assert j.returncode == 1 and "Traceback" not in j.stderr + j.stdout, (name, j.stderr)
            checks = {ch["name"]: ch for ch in json.loads(j.stdout)["checks"]}
            assert not checks["snapshot"]["ok"] and "damaged" in checks["snapshot"]["detail"], (name, checks)
            assert checks["versioning"]["ok"] and checks["index"]["ok"], (name, checks)
        before = bucket_state(server, bucket)
        live_before = (repo.path / "state/skills/alpha/a.txt").read_bytes()
        r = repo.run("dr.rollback", snap.id, "--apply", "--confirm-label=verified")
        assert_clean_refusal(r, f"the manifest of snapshot {snap.id}", "damaged")
        said = [x for x in r.stderr.splitlines() if "the manifest of snapshot" in x]
        assert len(said) == 1 and "damaged" in said[0], (name, r.stderr)
        assert bucket_state(server, bucket) == before, name
        assert (repo.path / "state/skills/alpha/a.txt").read_bytes() == live_before
