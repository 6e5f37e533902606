"""`inv dr.drill --live` end to end: the newest snapshot brought back from the cold copy, byte for byte.

The primary is the `server` fixture (moto and Ceph RGW); the backup region is
a second moto server (`moto2`). Every run is the real `inv` (or `dr`)
subprocess in a scratch host repo. The drill only reads: both buckets'
versions and the live files are compared before and after.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import HostRepo, Server, bucket_state, local_tree, new_bucket

INDEX = "state/log/snapshots.ndjson"


def configure_backup(repo: HostRepo, backup: Server, **extra: Any) -> str:
    name = new_bucket(backup)
    repo.write_config(
        backup={
            "bucket": name,
            "endpoint_url": backup.endpoint,
            "region": "us-east-1",
            "access_key_id": backup.access_key,
            "secret_access_key": backup.secret_key,
        },
        **extra,
    )
    return name


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r


def snapshot_and_backup(repo: HostRepo) -> str:
    repo.seed()
    ok(repo.run("dr.snapshot", "--label=base"))
    ok(repo.run("dr.backup"))
    (row,) = [r for r in repo.index_rows() if r["kind"] == "snapshot"]
    return str(row["id"])


def drill_rows(repo: HostRepo) -> list[dict[str, Any]]:
    return [r for r in repo.index_rows() if r["kind"] == "drill"]


def live_files(repo: HostRepo) -> dict[str, bytes]:
    # The index is where the drill's row goes; everything else live must stay as it was.
    return {k: v for k, v in local_tree(repo.path / "state").items() if k != "log/snapshots.ndjson"}


def restore_leftovers(repo: HostRepo) -> list[str]:
    d = repo.path / "_restore"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_live_drill_passes_and_changes_nothing(server, bucket, make_repo, moto2, tmp_path: Path):
    repo = make_repo(server, bucket)
    cold = configure_backup(repo, moto2)
    snap = snapshot_and_backup(repo)
    primary_before, cold_before = bucket_state(server, bucket), bucket_state(moto2, cold)
    files_before = live_files(repo)
    report = tmp_path / "drill.html"

    r = ok(repo.run("dr.drill", "--live", "--json", f"--report={report}"))

    out = json.loads(r.stdout)
    assert out["ok"] is True and out["snapshot"] == snap and out["source"] == "backup"
    assert out["objects"] == 5 and out["checked"] == 5 and out["failed"] == []
    assert out["bytes"] == sum(len(v) for v in files_before.values())
    assert bucket_state(server, bucket) == primary_before
    assert bucket_state(moto2, cold) == cold_before
    assert live_files(repo) == files_before
    assert restore_leftovers(repo) == []
    (row,) = drill_rows(repo)
    assert row["ok"] is True and row["snapshot"] == snap and row["source"] == "backup"
    assert row["objects"] == 5 and row["bytes"] == out["bytes"] and row["failed"] == []
    assert isinstance(row["ttfb_seconds"], (int, float)) and row["rto_seconds"] >= row["ttfb_seconds"]
    names = [s["name"] for s in row["steps"]]
    assert any(n.startswith("point in time") for n in names), names
    assert all(isinstance(s["seconds"], (int, float)) for s in row["steps"])
    html = report.read_text(encoding="utf-8")
    assert "<svg" in html and snap in html and "PASS" in html and "Did not come back" not in html


def test_dr_program_source_primary_sample_and_keep(moto_server, make_repo, moto2):
    repo = make_repo(moto_server, new_bucket(moto_server))
    configure_backup(repo, moto2)
    snap_id = snapshot_and_backup(repo)

    r = ok(repo.dr("drill", "--live", "--source=primary", "--sample=1", "--seed=7", "--keep", f"--id={snap_id}"))

    assert "seed 7" in r.stdout, r.stdout
    (row,) = drill_rows(repo)
    assert row["ok"] is True and row["source"] == "primary" and row["sample"] == 1 and row["seed"] == 7
    # One unit of two (alpha: 3 objects, beta: 1) is checked, not the notes outside the units.
    assert row["checked"] in (1, 3)
    kept = restore_leftovers(repo)
    assert len(kept) == 1 and kept[0].startswith("drill-"), kept
    # Run again with the same seed: the same unit is chosen.
    again = ok(repo.run("dr.drill", "--live", "--source=primary", "--sample=1", "--seed=7", "--json"))
    assert json.loads(again.stdout)["checked"] == row["checked"]


def test_tampered_cold_object_fails_naming_the_key(server, bucket, make_repo, moto2, tmp_path: Path):
    repo = make_repo(server, bucket)
    cold = configure_backup(repo, moto2)
    snap = snapshot_and_backup(repo)
    key = f"snapshots/{snap}/state/skills/alpha/a.txt"
    c = moto2.client()
    original = c.get_object(Bucket=cold, Key=key)["Body"].read()
    tampered = bytes(b ^ 1 for b in original)
    assert len(tampered) == len(original)
    c.put_object(Bucket=cold, Key=key, Body=tampered)
    primary_before, cold_before = bucket_state(server, bucket), bucket_state(moto2, cold)

    report = tmp_path / "failed.html"
    r = repo.run("dr.drill", "--live", f"--report={report}")

    assert r.returncode == 1, (r.stdout, r.stderr)
    html = report.read_text(encoding="utf-8")
    assert 'id="verdict">FAIL<' in html and "<code>state/skills/alpha/a.txt</code>" in html
    assert "Traceback" not in r.stdout + r.stderr
    assert "state/skills/alpha/a.txt" in r.stderr, r.stderr
    (row,) = drill_rows(repo)
    assert row["ok"] is False and row["failed"] == ["state/skills/alpha/a.txt"]
    assert bucket_state(server, bucket) == primary_before
    assert bucket_state(moto2, cold) == cold_before
    assert restore_leftovers(repo) == []


def test_freshness_and_verify_want_a_recent_passing_drill(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    cold = configure_backup(repo, moto2, drill={"max_age_days": 7})
    ok(repo.run("dr.versioning", "--enable"))
    snap = snapshot_and_backup(repo)

    before = repo.run("dr.freshness")
    assert before.returncode == 1 and "drill" in before.stdout + before.stderr, (before.stdout, before.stderr)
    assert "no drill row" in before.stdout + before.stderr
    verify = repo.run("dr.verify")
    assert verify.returncode == 1 and "no drill row" in verify.stdout + verify.stderr
    assert [line.split()[1] for line in verify.stdout.splitlines() if line.startswith("FAIL")] == ["drill"]

    ok(repo.run("dr.drill", "--live"))
    ok(repo.run("dr.freshness"))
    ok(repo.run("dr.verify"))

    # A failed newest drill fails them again, naming it.
    key = f"snapshots/{snap}/state/skills/beta/blob.bin"
    body = moto2.client().get_object(Bucket=cold, Key=key)["Body"].read()
    moto2.client().put_object(Bucket=cold, Key=key, Body=body[::-1])
    assert repo.run("dr.drill", "--live").returncode == 1
    after = repo.run("dr.freshness")
    assert after.returncode == 1 and "failed" in after.stdout + after.stderr, after.stdout


def test_stale_drill_row_fails_freshness(moto_server, make_repo, moto2):
    repo = make_repo(moto_server, new_bucket(moto_server))
    configure_backup(repo, moto2, drill={"max_age_days": 7})
    snapshot_and_backup(repo)
    ok(repo.run("dr.drill", "--live"))
    (row,) = drill_rows(repo)
    old = {**row, "id": "drill-2020-01-01T00:00:00Z", "ts": "2020-01-01T00:00:00Z"}
    lines = [json.dumps(r) for r in repo.index_rows() if r["kind"] != "drill"] + [json.dumps(old)]
    repo.index_path.write_text("\n".join(lines) + "\n")
    r = repo.run("dr.freshness")
    assert r.returncode == 1 and "older than drill.max_age_days" in r.stdout + r.stderr, r.stdout


def test_refusals_write_nothing(moto_server, make_repo, moto2):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    ok(repo.run("dr.snapshot", "--label=base"))
    rows = repo.index_bytes()
    # No backup configured: the cold copy cannot be read.
    r = repo.run("dr.drill", "--live")
    assert r.returncode == 1 and "dr.backup.bucket" in r.stderr and "fix:" in r.stderr, r.stderr
    # A bad --source, a bad --sample.
    assert "--source" in repo.run("dr.drill", "--live", "--source=elsewhere").stderr
    assert "--sample" in repo.run("dr.drill", "--live", "--source=primary", "--sample=0").stderr
    # The holding dir would not be ignored by git.
    (repo.path / ".gitignore").write_text("")
    r = repo.run("dr.drill", "--live", "--source=primary")
    assert r.returncode == 1 and "gitignore" in r.stderr, r.stderr
    assert repo.index_bytes() == rows
    assert restore_leftovers(repo) == []


def test_embedded_drill_writes_the_report_too(moto_server, make_repo, tmp_path: Path):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    report = tmp_path / "embedded.html"
    r = ok(repo.run("dr.drill", f"--report={report}", timeout=300))
    assert f"report written to {report}" in r.stdout
    html = report.read_text(encoding="utf-8")
    assert 'id="verdict">PASS<' in html and "recover it from the backup" in html and "<svg" in html


def test_multipart_object_is_proven_by_its_bytes_never_its_etag(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    cold = configure_backup(repo, moto2)
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
    ok(repo.run("dr.snapshot", "--label=mp"))
    ok(repo.run("dr.backup"))
    (snap,) = [r["id"] for r in repo.index_rows() if r["kind"] == "snapshot"]

    out = json.loads(ok(repo.run("dr.drill", "--live", "--json")).stdout)
    assert out["ok"] is True and out["checked"] == 6 and out["bytes"] >= 2 * part

    # Same size, other bytes, in the cold copy: its ETag is the new bytes' own MD5, which proves nothing.
    cold_key = f"snapshots/{snap}/{key}"
    moto2.client().put_object(Bucket=cold, Key=cold_key, Body=b"b" * part + b"a" * part)
    r = repo.run("dr.drill", "--live")
    assert r.returncode == 1 and key in r.stderr, (r.stdout, r.stderr)
    assert drill_rows(repo)[-1]["failed"] == [key]
