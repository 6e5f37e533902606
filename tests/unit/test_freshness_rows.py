"""Which cross-region-backup rows `dr.freshness` counts: rows from the future, and rows for another destination."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dr_tasks import load_config
from dr_tasks.backup_rows import FUTURE_TOLERANCE, BackupDest, newest_backup_row
from dr_tasks.config import DrConfig
from dr_tasks.ops.freshness import FreshnessResult, check_freshness
from dr_tasks.rows import BackupRow

NOW = datetime(2026, 4, 16, 12, 0, tzinfo=timezone.utc)
BUCKET = "cold-copy"
PREFIX = "repo-a/"
URL = "http://backup.example:9000"


def ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def row(
    age: timedelta,
    *,
    bucket: str = BUCKET,
    prefix: str | None = PREFIX,
    endpoint: str | None = URL,
    partial: bool = False,
    record_endpoint: bool = True,
    rid: str | None = None,
) -> dict[str, Any]:
    """A row as BackupResult.row() writes it; `prefix=None` and `record_endpoint=False` leave fields out."""
    t = ts(NOW - age)
    r: dict[str, Any] = {
        "v": 1,
        "kind": "cross-region-backup",
        "id": rid or f"{t}-backup",
        "ts": t,
        "dest_bucket": bucket,
        "copied": 1,
        "skipped": 0,
        "bytes": 1,
        "failed": 1 if partial else 0,
        "partial": partial,
    }
    if prefix is not None:
        r["dest"] = f"s3://{bucket}/{prefix}"
    if record_endpoint:
        r["dest_endpoint"] = endpoint
    return r


def cfg(tmp_path: Path, **backup: Any) -> DrConfig:
    settings = {"bucket": BUCKET, "prefix": PREFIX, "endpoint_url": URL, "max_age_days": 7, **backup}
    return load_config({"bucket": "primary-bucket", "backup": settings}, tmp_path)


def run(tmp_path: Path, rows: list[dict[str, Any]], **backup: Any) -> FreshnessResult:
    index = tmp_path / "state" / "log" / "snapshots.ndjson"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return check_freshness(cfg(tmp_path, **backup), now=NOW)


def backup(result: FreshnessResult) -> Any:
    return next(c for c in result.checks if c.name == "backup")


# ---------------------------------------------------------------------- rows from the future
def test_a_row_dated_in_the_future_fails_as_clock_skew(tmp_path: Path) -> None:
    result = run(tmp_path, [row(-timedelta(hours=3))])
    c = backup(result)
    assert not c.ok and not result.ok
    assert c.detail.startswith("clock skew: ") and "3.0h ahead of this machine's clock" in c.detail
    assert "within" not in c.detail and "in the future" not in c.detail
    assert "NTP" in c.fix and "inv dr.backup" in c.fix
    assert result.last_backup is None


def test_a_row_a_little_ahead_is_ordinary_drift_and_counts(tmp_path: Path) -> None:
    result = run(tmp_path, [row(-(FUTURE_TOLERANCE - timedelta(seconds=30)))])
    assert backup(result).ok and result.last_backup is not None


def test_a_future_row_fails_even_with_an_older_fresh_row_before_it(tmp_path: Path) -> None:
    # The clock jumped ahead after a good run, and nothing has been written on a right clock since.
    rows = [row(timedelta(days=3), rid="good"), row(-timedelta(days=30), rid="skewed")]
    result = run(tmp_path, rows)
    c = backup(result)
    assert not c.ok and "clock skew" in c.detail and "skewed" in c.detail
    assert "the newest correctly dated row, good, ran 3.0d ago" in c.detail
    assert result.last_backup is not None and result.last_backup["id"] == "good"


def test_a_future_row_followed_by_a_correctly_dated_row_is_ignored(tmp_path: Path) -> None:
    # The clock was put right and a backup ran: the row from the future no longer counts, or fails.
    rows = [row(-timedelta(days=30), rid="skewed"), row(timedelta(hours=1), rid="good")]
    result = run(tmp_path, rows)
    c = backup(result)
    assert c.ok, c.detail
    assert result.last_backup is not None and result.last_backup["id"] == "good"
    assert "dated in the future (the latest skewed) are ignored" in c.detail


def test_a_stopped_backup_behind_an_ignored_future_row_is_stale(tmp_path: Path) -> None:
    rows = [row(-timedelta(days=30), rid="skewed"), row(timedelta(days=8), rid="old")]
    c = backup(run(tmp_path, rows))
    assert not c.ok and c.detail.startswith("stale: ") and "old" in c.detail and "ignored" in c.detail


def test_newest_backup_row_leaves_future_rows_out_only_when_given_now() -> None:
    rows = [
        BackupRow.parse(row(timedelta(days=1), rid="good")),
        BackupRow.parse(row(-timedelta(days=30), rid="skewed")),
    ]
    assert newest_backup_row(rows, BUCKET).id == "skewed"  # type: ignore[union-attr]
    assert newest_backup_row(rows, BUCKET, now=NOW).id == "good"  # type: ignore[union-attr]


# ---------------------------------------------------------------------- the destination
def test_a_row_for_another_prefix_does_not_count(tmp_path: Path) -> None:
    result = run(tmp_path, [row(timedelta(hours=1), prefix="")], prefix="repo-b/")
    c = backup(result)
    assert not c.ok and result.last_backup is None
    assert f"no complete cross-region-backup row to s3://{BUCKET}/repo-b/" in c.detail
    assert f"went to s3://{BUCKET}/ at {URL}" in c.detail and "changed since" in c.detail
    assert c.fix == "run `inv dr.backup`"


def test_a_row_for_another_endpoint_does_not_count(tmp_path: Path) -> None:
    c = backup(run(tmp_path, [row(timedelta(hours=1))], endpoint_url="http://other-region.example:9000"))
    assert not c.ok and "changed since" in c.detail


def test_a_row_for_another_bucket_does_not_count(tmp_path: Path) -> None:
    c = backup(run(tmp_path, [row(timedelta(hours=1), bucket="old-bucket")]))
    assert not c.ok and "went to s3://old-bucket/" in c.detail


def test_another_spelling_of_the_same_endpoint_counts(tmp_path: Path) -> None:
    rows = [row(timedelta(hours=1), endpoint="HTTP://Backup.Example:9000/")]
    assert backup(run(tmp_path, rows)).ok


def test_an_aws_row_counts_for_aws_only(tmp_path: Path) -> None:
    rows = [row(timedelta(hours=1), endpoint=None)]
    assert backup(run(tmp_path, rows, endpoint_url=None)).ok
    assert not backup(run(tmp_path, rows)).ok


def test_rows_of_older_versions_compare_what_they_record(tmp_path: Path) -> None:
    # No `dest` and no `dest_endpoint`: only the bucket can be compared.
    bare = [row(timedelta(hours=1), prefix=None, record_endpoint=False)]
    assert backup(run(tmp_path, bare, prefix="anything/", endpoint_url="http://elsewhere:1")).ok
    # A `dest` but no `dest_endpoint`: the prefix still counts.
    no_endpoint = [row(timedelta(hours=1), record_endpoint=False)]
    assert backup(run(tmp_path, no_endpoint, endpoint_url="http://elsewhere:1")).ok
    assert not backup(run(tmp_path, no_endpoint, prefix="repo-b/")).ok


def test_last_attempt_is_for_the_configured_destination(tmp_path: Path) -> None:
    rows = [row(timedelta(hours=2), rid="here"), row(timedelta(hours=1), prefix="", partial=True, rid="elsewhere")]
    result = run(tmp_path, rows)
    assert backup(result).ok and "partial" not in backup(result).detail
    assert result.last_attempt is not None and result.last_attempt["id"] == "here"


def test_backup_dest_holds_rows_by_bucket_prefix_and_endpoint() -> None:
    dest = BackupDest(BUCKET, PREFIX, URL)
    assert str(dest) == f"s3://{BUCKET}/{PREFIX}"
    assert dest.holds(BackupRow.parse(row(timedelta(0))))
    assert dest.holds(BackupRow.parse(row(timedelta(0), endpoint="http://backup.example:9000/")))
    assert not dest.holds(BackupRow.parse(row(timedelta(0), prefix="repo-a/sub/")))
    assert not dest.holds(BackupRow.parse(row(timedelta(0), endpoint="http://backup.example:9001")))
    assert not dest.holds(BackupRow.parse(row(timedelta(0), bucket="x")))
    # A bucket name alone (what dr.backup --if-older-than passes) still compares the bucket only.
    assert newest_backup_row([BackupRow.parse(row(timedelta(0), prefix="other/"))], BUCKET) is not None
