"""`inv dr.freshness` end to end: fresh, stale, missing, partial-only and torn indexes; it sends no request."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import HostRepo, new_bucket

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DEST = "cold-copy-bucket"


@pytest.fixture(autouse=True)
def _now() -> None:
    """Rows are dated from each test's start, not from the module's import: a full suite can take an hour."""
    global NOW
    NOW = datetime.now(timezone.utc).replace(microsecond=0)


def ts(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup_row(age: timedelta, partial: bool = False, dest: str = DEST, failed: int = 0) -> dict[str, Any]:
    t = ts(age)
    return {
        "v": 1,
        "kind": "cross-region-backup",
        "id": f"{t}-backup",
        "ts": t,
        "dest_bucket": dest,
        "dest": f"s3://{dest}/",
        "copied": 3,
        "skipped": 0,
        "bytes": 10,
        "failed": failed,
        "partial": partial,
    }


def snapshot_row(age: timedelta, label: str = "daily") -> dict[str, Any]:
    t = ts(age)
    return {"v": 1, "kind": "snapshot", "id": f"{t}-{label}", "ts": t, "label": label}


@pytest.fixture
def repo(moto_server, make_repo, fault_proxy_moto) -> Iterator[HostRepo]:
    """A repo whose endpoints both go through a proxy, so any request would be counted."""
    bucket = new_bucket(moto_server)
    r = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    r.write_config(backup={"bucket": DEST, "endpoint_url": fault_proxy_moto.url, "max_age_days": 7})
    yield r
    assert sum(fault_proxy_moto.counts.values()) == 0, "dr.freshness must not send any request"


def write_index(repo: HostRepo, rows: list[dict[str, Any]], tail: str = "") -> None:
    repo.index_path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def freshness(repo: HostRepo, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = repo.run("dr.freshness", "--json", *args)
    assert "Traceback" not in r.stderr
    return r, json.loads(r.stdout)


def check(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["checks"] if c["name"] == name)


def test_fresh_backup_passes(repo: HostRepo) -> None:
    write_index(repo, [snapshot_row(timedelta(hours=3)), backup_row(timedelta(days=2))])
    r, data = freshness(repo)
    assert r.returncode == 0, r.stderr
    assert data["ok"] is True and data["last_backup"]["ts"] == ts(timedelta(days=2))
    assert "2.0d ago" in check(data, "backup")["detail"] or "48.0h ago" in check(data, "backup")["detail"]
    plain = repo.run("dr.freshness")
    assert plain.returncode == 0 and "PASS  backup" in plain.stdout and "PASS  index" in plain.stdout


def test_stale_backup_fails_naming_when_the_last_one_ran(repo: HostRepo) -> None:
    write_index(repo, [backup_row(timedelta(days=9)), backup_row(timedelta(days=1), partial=True, failed=2)])
    r, data = freshness(repo)
    assert r.returncode == 1
    c = check(data, "backup")
    assert c["ok"] is False and "stale" in c["detail"] and ts(timedelta(days=9)) in c["detail"]
    assert "backup.max_age_days=7 days" in c["detail"] and "was partial" in c["detail"]
    assert c["fix"] == "run `inv dr.backup`"
    plain = repo.run("dr.freshness")
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "FAIL  backup" in plain.stdout
    # each failure is printed once: in full on stdout, by name on stderr
    assert (
        "stale" in plain.stdout and ts(timedelta(days=9)) in plain.stdout and "fix: run `inv dr.backup`" in plain.stdout
    )
    assert "checks failed: backup" in plain.stderr and ts(timedelta(days=9)) not in plain.stderr


def test_missing_backup_row_fails_naming_what_is_missing(repo: HostRepo) -> None:
    write_index(repo, [snapshot_row(timedelta(hours=1))])
    r, data = freshness(repo)
    assert r.returncode == 1
    detail = check(data, "backup")["detail"]
    assert f"no complete cross-region-backup row to s3://{DEST}" in detail and "never run" in detail
    assert "no complete cross-region-backup row" in repo.run("dr.freshness").stdout


def test_empty_or_absent_index_is_missing_not_an_error(repo: HostRepo) -> None:
    repo.index_path.unlink()
    r, data = freshness(repo)
    assert r.returncode == 1 and check(data, "backup")["ok"] is False and check(data, "index")["ok"] is True


def test_partial_rows_never_count_as_fresh(repo: HostRepo) -> None:
    write_index(repo, [backup_row(timedelta(hours=1), partial=True, failed=4)])
    r, data = freshness(repo)
    assert r.returncode == 1
    detail = check(data, "backup")["detail"]
    assert "no complete cross-region-backup row" in detail and "was partial (4 objects failed)" in detail
    assert data["last_attempt"]["partial"] is True and data["last_backup"] is None


def test_a_row_for_another_backup_bucket_does_not_count(repo: HostRepo) -> None:
    write_index(repo, [backup_row(timedelta(hours=1), dest="some-old-bucket")])
    r, _ = freshness(repo)
    assert r.returncode == 1


def test_unset_backup_bucket_is_named(repo: HostRepo) -> None:
    repo.write_config(backup={"bucket": None})
    write_index(repo, [])
    r, data = freshness(repo)
    assert r.returncode == 1 and "dr.backup.bucket is not set" in check(data, "backup")["detail"]


def test_torn_last_line_is_flagged_and_kept(repo: HostRepo) -> None:
    write_index(repo, [backup_row(timedelta(hours=5))], tail='{"v": 1, "kind": "cross-region-bac')
    before = repo.index_bytes()
    r, data = freshness(repo)
    assert r.returncode == 1
    c = check(data, "index")
    assert c["ok"] is False and "torn" in c["detail"] and "line 2" in c["detail"]
    assert check(data, "backup")["ok"] is True  # the good rows still count
    assert data["bad_lines"][0]["line"] == 2
    assert repo.index_bytes() == before


def test_garbled_middle_line_is_flagged(repo: HostRepo) -> None:
    good = backup_row(timedelta(hours=5))
    repo.index_path.write_text(json.dumps(good) + "\nnot json at all\n" + json.dumps(snapshot_row(timedelta(1))) + "\n")
    r, data = freshness(repo)
    assert r.returncode == 1
    c = check(data, "index")
    assert "line 2: not valid JSON" in c["detail"] and "unreadable lines" in c["detail"]


def test_max_snapshot_age(repo: HostRepo) -> None:
    write_index(repo, [backup_row(timedelta(hours=2)), snapshot_row(timedelta(days=3), "old")])
    ok, data = freshness(repo)
    assert ok.returncode == 0 and all(c["name"] != "snapshot" for c in data["checks"])
    r, data = freshness(repo, "--max-snapshot-age=2d")
    assert r.returncode == 1
    c = check(data, "snapshot")
    assert "stale" in c["detail"] and "-old" in c["detail"] and "--max-snapshot-age=2d" in c["detail"]
    r, data = freshness(repo, "--max-snapshot-age=96h")
    assert r.returncode == 0 and check(data, "snapshot")["ok"] is True
    write_index(repo, [backup_row(timedelta(hours=2))])
    r, data = freshness(repo, "--max-snapshot-age=2d")
    assert r.returncode == 1 and check(data, "snapshot")["detail"] == "no snapshot row in the index"


@pytest.mark.parametrize("value", ["2", "two days", "-1d", "0h", "2x", "1h1d"])
def test_bad_durations_are_refused(repo: HostRepo, value: str) -> None:
    r = repo.run("dr.freshness", f"--max-snapshot-age={value}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--max-snapshot-age" in r.stderr and "e.g. --max-snapshot-age=6d" in r.stderr


@pytest.mark.parametrize(
    ("age", "stale", "fresh"),
    [(timedelta(days=8), "1w", "1w2d"), (timedelta(hours=30), "1d", "1d12h"), (timedelta(minutes=80), "1h", "90m")],
)
def test_durations_in_weeks_and_mixed_units(repo: HostRepo, age: timedelta, stale: str, fresh: str) -> None:
    write_index(repo, [backup_row(timedelta(hours=2)), snapshot_row(age, "aged")])
    r, data = freshness(repo, f"--max-snapshot-age={stale}")
    assert r.returncode == 1 and check(data, "snapshot")["ok"] is False, r.stderr
    r, data = freshness(repo, f"--max-snapshot-age={fresh}")
    assert r.returncode == 0 and check(data, "snapshot")["ok"] is True, r.stderr
