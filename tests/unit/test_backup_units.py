"""Unit tests for the pure parts of backup, freshness and versioning."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dr_tasks.backup_rows import newest_backup_row
from dr_tasks.errors import DrError
from dr_tasks.index import IndexRead
from dr_tasks.ops.freshness import ago
from dr_tasks.ops.versioning import RULE_ID, _assess, covers_whole_bucket, our_rule
from dr_tasks.timeparse import parse_duration


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("6d", timedelta(days=6)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("1.5d", timedelta(hours=36)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(hours=36)),
        ("2h30m", timedelta(minutes=150)),
        ("1w2d3h4m", timedelta(days=9, hours=3, minutes=4)),
        ("6 d", timedelta(days=6)),
    ],
)
def test_parse_duration(text: str, want: timedelta) -> None:
    assert parse_duration(text, "--x") == want


@pytest.mark.parametrize("text", ["", "6", "6 days", "d", "-1d", "0d", "6x", "6D", "1h1d", "1d1d", "0w0d", "w"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(DrError, match="--x"):
        parse_duration(text, "--x")


def test_ago() -> None:
    assert ago(timedelta(seconds=5)) == "5s ago"
    assert ago(timedelta(hours=3)) == "3.0h ago"
    assert ago(timedelta(days=9)) == "9.0d ago"
    assert ago(timedelta(seconds=-1)) == "in the future"


def test_newest_backup_row_skips_partial_unparseable_and_other_buckets() -> None:
    rows = [
        {"kind": "cross-region-backup", "ts": "2026-01-01T00:00:00Z", "partial": False, "dest_bucket": "b", "id": "1"},
        {"kind": "cross-region-backup", "ts": "2026-01-03T00:00:00Z", "partial": True, "dest_bucket": "b", "id": "2"},
        {"kind": "cross-region-backup", "ts": "garbage", "partial": False, "dest_bucket": "b", "id": "3"},
        {"kind": "cross-region-backup", "ts": "2026-01-04T00:00:00Z", "partial": False, "dest_bucket": "c", "id": "4"},
        {"kind": "cross-region-backup", "ts": "2026-01-05T00:00:00Z", "dest_bucket": "b", "id": "5"},  # no flag
        {"kind": "snapshot", "ts": "2026-01-06T00:00:00Z", "id": "6"},
    ]
    backups = IndexRead(rows=rows).backups()
    assert [b.id for b in backups] == ["1", "2", "3", "4", "5"]
    assert newest_backup_row(backups, "b").id == "1"  # type: ignore[union-attr]
    assert newest_backup_row(backups).id == "4"  # type: ignore[union-attr]
    assert newest_backup_row(backups, "zzz") is None


@pytest.mark.parametrize(
    ("rule", "whole"),
    [
        ({"Filter": {"Prefix": ""}}, True),
        ({"Prefix": ""}, True),  # how Ceph RGW reads `Filter: {Prefix: ""}` back
        ({"Filter": {}}, True),
        ({}, True),
        ({"Filter": {"Prefix": "logs/"}}, False),
        ({"Prefix": "logs/"}, False),
        ({"Filter": {"Tag": {"Key": "a", "Value": "b"}}}, False),
        ({"Filter": {"ObjectSizeGreaterThan": 10}}, False),
    ],
)
def test_covers_whole_bucket(rule: dict, whole: bool) -> None:
    assert covers_whole_bucket(rule) is whole


def test_assess() -> None:
    legacy = {"ID": RULE_ID, "Status": "Enabled", "Prefix": "", "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}
    ok = _assess("b", "Enabled", [legacy], 30)
    assert ok.ok and ok.rule is legacy and ok.other_rules == []
    assert _assess("b", "Suspended", [legacy], 30).problems == ["versioning is Suspended, expected Enabled"]
    disabled = {**our_rule(30), "Status": "Disabled"}
    assert not _assess("b", "Enabled", [disabled], 30).ok
    prefixed = {**our_rule(30), "Filter": {"Prefix": "state/"}}
    assert not _assess("b", "Enabled", [prefixed], 30).ok
    shorter = {**our_rule(7), "ID": "other"}
    r = _assess("b", "Enabled", [our_rule(30), shorter], 30)
    assert not r.ok and "rule other expires noncurrent versions after 7 days" in r.problems[0]
