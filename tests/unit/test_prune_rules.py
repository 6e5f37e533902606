"""Retention by counts: which snapshots `dr.prune` keeps, with no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dr_tasks.errors import DrError
from dr_tasks.history import pruned_ids
from dr_tasks.index import IndexRead
from dr_tasks.layout import format_snapshot_id, parse_snapshot_id
from dr_tasks.ops.prune import KeepRules, decide
from dr_tasks.pins import index_pins


def snaps(*stamps: str) -> list[tuple[str, datetime, str]]:
    out = []
    for s in stamps:
        ts = datetime.strptime(s, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
        out.append((format_snapshot_id(ts, "s"), ts, "s"))
    return out


def kept(decisions) -> list[str]:
    return [d.ts[:16].replace("T", " ") for d in decisions if d.keep]


def test_keep_last_keeps_the_n_newest_and_the_order_is_newest_first():
    ds = decide(snaps("2026-01-01 10:00", "2026-01-03 10:00", "2026-01-02 10:00"), KeepRules(last=2), set())
    assert [d.ts for d in ds] == ["2026-01-03T10:00:00Z", "2026-01-02T10:00:00Z", "2026-01-01T10:00:00Z"]
    assert kept(ds) == ["2026-01-03 10:00", "2026-01-02 10:00"]
    assert ds[0].reasons == ["newest", "last"]


def test_daily_keeps_the_newest_of_each_day_that_has_snapshots():
    ds = decide(
        snaps("2026-01-05 09:00", "2026-01-05 18:00", "2026-01-04 12:00", "2026-01-01 08:00", "2026-01-01 23:00"),
        KeepRules(daily=3),
        set(),
    )
    assert kept(ds) == ["2026-01-05 18:00", "2026-01-04 12:00", "2026-01-01 23:00"]
    assert [d.reasons for d in ds if d.keep][2] == ["daily 2026-01-01"]


def test_a_machine_offline_for_months_keeps_its_old_snapshots():
    """Days WITH snapshots count, not calendar days: a long gap loses nothing."""
    old = snaps("2025-06-01 10:00", "2025-06-02 10:00", "2025-06-03 10:00")
    now = snaps("2026-03-01 10:00")
    ds = decide(old + now, KeepRules(daily=3), set())
    assert kept(ds) == ["2026-03-01 10:00", "2025-06-03 10:00", "2025-06-02 10:00"]


def test_weekly_and_monthly_use_iso_weeks_and_calendar_months():
    ds = decide(
        snaps("2026-01-04 10:00", "2026-01-05 10:00", "2026-01-12 10:00", "2026-02-02 10:00"),
        KeepRules(weekly=2, monthly=2),
        set(),
    )
    # 2026-01-04 is a Sunday (ISO week 1); 01-05 starts week 2; 01-12 week 3; 02-02 week 6
    reasons = {d.ts[:10]: d.reasons for d in ds}
    assert reasons["2026-02-02"] == ["newest", "weekly 2026-W06", "monthly 2026-02"]
    assert reasons["2026-01-12"] == ["weekly 2026-W03", "monthly 2026-01"]
    assert reasons["2026-01-05"] == []
    assert reasons["2026-01-04"] == []


def test_rules_are_a_union_and_pins_and_the_newest_always_stay():
    s = snaps(*(f"2026-01-{d:02d} 10:00" for d in range(1, 11)))
    pinned = {s[0][0]}
    ds = decide(s, KeepRules(last=1, monthly=1), pinned)
    assert kept(ds) == ["2026-01-10 10:00", "2026-01-01 10:00"]
    assert ds[-1].reasons == ["pinned"]


def test_same_second_snapshots_are_ordered_by_id():
    ts = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ds = decide([("2026-01-01T00:00:00Z-a", ts, "a"), ("2026-01-01T00:00:00Z-b", ts, "b")], KeepRules(last=1), set())
    assert [(d.id, d.keep) for d in ds] == [("2026-01-01T00:00:00Z-b", True), ("2026-01-01T00:00:00Z-a", False)]


def test_no_rule_is_refused_and_bad_counts_name_the_flag():
    with pytest.raises(DrError, match="refusing to prune with no keep rule"):
        KeepRules()
    with pytest.raises(DrError, match="refusing to prune with no keep rule"):
        KeepRules.parse(last=None, daily=None, weekly="0", monthly=None)
    for bad in ("", "-1", "x", "1.5", "\u0663", "9" * 40, "1\n", " 1"):
        with pytest.raises(DrError, match="--keep-daily must be a whole number"):
            KeepRules.parse(last=None, daily=bad, weekly=None, monthly=None)
    assert KeepRules.parse(last="3", daily=None, weekly=None, monthly=None) == KeepRules(last=3)


def test_snapshot_ids_parse_strictly():
    assert parse_snapshot_id("2026-01-01T00:00:00Z-pre-migration") == (
        datetime(2026, 1, 1, tzinfo=timezone.utc),
        "pre-migration",
    )
    for bad in ("2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z-x", "x-2026", "2026-01-01T00:00:00Z-a..b", "", 5):
        assert parse_snapshot_id(bad) is None  # type: ignore[arg-type]


def test_pin_state_is_the_last_row_and_pruned_ids_come_from_prune_rows():
    read = IndexRead(
        rows=[
            {"kind": "pin", "id": "a", "pinned": True},
            {"kind": "pin", "id": "b"},
            {"kind": "pin", "id": "a", "pinned": False},
            {"kind": "pin", "id": 5},
            {"kind": "prune", "deleted": ["x", 3], "orphans": ["y"]},
            {"kind": "prune", "deleted": "garbage"},
        ]
    )
    assert index_pins(read) == {"a": False, "b": True}
    assert pruned_ids(read) == {"x", "y"}


def test_many_snapshots_decide_quickly():
    base = datetime(2020, 1, 1, tzinfo=timezone.utc)
    many = [(format_snapshot_id(base + timedelta(hours=h), "s"), base + timedelta(hours=h), "s") for h in range(20000)]
    ds = decide(many, KeepRules(last=5, daily=7, weekly=4, monthly=12), set())
    for rule, n in (("last", 5), ("daily", 7), ("weekly", 4), ("monthly", 12)):
        assert sum(any(r.split()[0] == rule for r in d.reasons) for d in ds) == n
    assert ds[0].keep and sum(d.keep for d in ds) <= 5 + 7 + 4 + 12


def test_a_snapshot_row_after_the_prune_row_brings_the_snapshot_back():
    read = IndexRead(
        rows=[
            {"kind": "snapshot", "id": "a"},
            {"kind": "snapshot", "id": "b"},
            {"kind": "prune", "id": "p", "deleted": ["a", "b"], "orphans": []},
            {"kind": "snapshot", "id": "a", "reindexed": True},
        ]
    )
    assert pruned_ids(read) == {"b"}


def test_also_keep_adds_its_reason_and_keeps():
    s = snaps("2026-01-01 10:00", "2026-01-02 10:00", "2026-01-03 10:00")
    ds = decide(s, KeepRules(last=1), set(), {s[0][0]: "undo of rollback r"})
    assert kept(ds) == ["2026-01-03 10:00", "2026-01-01 10:00"]
    assert ds[-1].reasons == ["undo of rollback r"]
