"""The `drill` row: typed, parse(format()) round trip, accepted by the index; the freshness rule over it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from dr_tasks import config as config_mod
from dr_tasks.index import IndexRead, row_problem
from dr_tasks.ops.freshness import drill_check
from dr_tasks.rows import DrillRow, DrillStepRow, drill_rows

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone.utc)


def row(age: timedelta, ok: bool = True, failed: tuple[str, ...] = ()) -> DrillRow:
    ts = (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    return DrillRow(
        f"drill-{ts}", ts, "2026-12-01T00:00:00Z-base", "backup", 5, 3000, ok, failed, len(failed), 5, None, 123,
        0.05, 1.5, 2.0, (DrillStepRow("bring back", 1.0, ok, 3000),), {},
    )  # fmt: skip


def cfg(tmp_path: Path, max_age: float | None) -> config_mod.DrConfig:
    return config_mod.load({"bucket": "b-bucket", "drill": {"max_age_days": max_age}}, tmp_path)


def test_round_trip_and_the_index_accepts_it() -> None:
    r = row(timedelta(hours=1), ok=False, failed=("state/a",))
    raw = {"v": 1, **r.format()}
    assert row_problem(raw) is None
    (back,) = drill_rows([raw, {"kind": "snapshot", "id": "x"}])
    assert back == r and back.raw is raw
    assert row_problem({**raw, "failed": "state/a"}) is not None


def test_unset_means_not_checked(tmp_path: Path) -> None:
    assert drill_check(cfg(tmp_path, None), IndexRead(), NOW) is None


def test_missing_failed_stale_future_and_fresh(tmp_path: Path) -> None:
    c = cfg(tmp_path, 7)

    def check(*rows: DrillRow) -> tuple[bool, str]:
        result = drill_check(c, IndexRead(rows=[{"v": 1, **r.format()} for r in rows]), NOW)
        assert result is not None
        return result.ok, result.detail

    assert check() == (False, f"no drill row in {c.index}: a restore from the backup was never tried")
    ok, detail = check(row(timedelta(days=8)))
    assert not ok and "older than drill.max_age_days=7 days" in detail
    ok, detail = check(row(timedelta(days=2)), row(timedelta(days=1), ok=False, failed=("state/x",)))
    assert not ok and "failed" in detail and "state/x" in detail
    assert check(row(timedelta(days=1)))[0]
    # A row dated far ahead of this clock never counts: the older passing one is judged.
    ok, detail = check(row(timedelta(days=1)), row(-timedelta(days=3), ok=False))
    assert ok, detail
