"""The bucket layout: each key and id parses back to what formatted it, and nothing else parses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dr_tasks import load_config
from dr_tasks.config import DrConfig
from dr_tasks.layout import (
    LOCK_KEY,
    META_PREFIX,
    PIN_PREFIX,
    REWRITES_KEY,
    backup_state_key,
    format_snapshot_id,
    is_label,
    manifest_key,
    parse_backup_state_key,
    parse_manifest_key,
    parse_pin_key,
    parse_snapshot_dir,
    parse_snapshot_id,
    pin_key,
    snapshot_dir,
)
from dr_tasks.timeparse import iso_utc, parse_iso

AT = datetime(2026, 4, 15, 18, 0, 7, tzinfo=timezone.utc)
SID = "2026-04-15T18:00:07Z-pre-migration"
MALFORMED_IDS = [
    "",
    "pre-migration",
    "2026-04-15T18:00:07Z",
    "2026-04-15T18:00:07Z-",
    "2026-04-15T18:00:07Z-Upper",
    "2026-04-15T18:00:07Z-a..b",
    "2026-04-15T18:00:07Z-a/b",
    "2026-04-15T18:00:07.5Z-x",
    "2026-02-30T18:00:07Z-x",
    "2026-04-15 18:00:07Z-x",
    "2026-04-15T18:00:07Z-" + "a" * 64,
    " 2026-04-15T18:00:07Z-x",
]


@pytest.fixture
def cfg(tmp_path: Path) -> DrConfig:
    return load_config({"bucket": "my-state", "prefix": "state/", "snapshot_prefix": "snaps/"}, tmp_path)


def test_fixed_keys_live_under_the_meta_prefix() -> None:
    assert LOCK_KEY == ".dr-tasks/lock.json"
    assert REWRITES_KEY == ".dr-tasks/rewrites.json"
    assert PIN_PREFIX == ".dr-tasks/pins/"
    assert all(k.startswith(META_PREFIX) for k in (LOCK_KEY, REWRITES_KEY, PIN_PREFIX))


def test_snapshot_id_round_trips() -> None:
    assert format_snapshot_id(AT, "pre-migration") == SID
    assert parse_snapshot_id(SID) == (AT, "pre-migration")
    # Ids carry whole seconds, in UTC, whatever the datetime given.
    later = AT.replace(microsecond=999_999).astimezone(timezone(timedelta(hours=2)))
    assert format_snapshot_id(later, "x") == "2026-04-15T18:00:07Z-x"
    for label in ("a", "a.b_c-9", "z" * 63):
        assert is_label(label)
        assert parse_snapshot_id(format_snapshot_id(AT, label)) == (AT, label)


@pytest.mark.parametrize("bad", [*MALFORMED_IDS, None, 7, ["x"]])
def test_malformed_snapshot_ids_do_not_parse(bad: object) -> None:
    assert parse_snapshot_id(bad) is None


def test_labels() -> None:
    for bad in ("", "-a", "A", "a b", "a/b", "a..b", "a" * 64, "a\n", None, 3):
        assert not is_label(bad)


def test_snapshot_dir_and_manifest_key_round_trip(cfg: DrConfig) -> None:
    assert snapshot_dir(cfg, SID) == f"snaps/{SID}/"
    assert manifest_key(cfg, SID) == f"snaps/{SID}.manifest.json"
    assert parse_snapshot_dir(cfg, snapshot_dir(cfg, SID)) == SID
    assert parse_manifest_key(cfg, manifest_key(cfg, SID)) == SID


@pytest.mark.parametrize("bad", MALFORMED_IDS)
def test_snapshot_keys_with_malformed_ids_do_not_parse(cfg: DrConfig, bad: str) -> None:
    assert parse_snapshot_dir(cfg, snapshot_dir(cfg, bad)) is None
    assert parse_manifest_key(cfg, manifest_key(cfg, bad)) is None
    assert parse_pin_key(pin_key(bad)) is None


def test_foreign_keys_do_not_parse(cfg: DrConfig) -> None:
    for key in (f"other/{SID}/", f"state/{SID}/", f"snaps/x/{SID}/"):
        assert parse_snapshot_dir(cfg, key) is None
    for key in (f"other/{SID}.manifest.json", f"snaps/{SID}.json", f"snaps/{SID}/a.manifest.json", f"snaps/{SID}"):
        assert parse_manifest_key(cfg, key) is None
    for key in (f"{PIN_PREFIX}{SID}", f".dr-tasks/{SID}.json", f"{PIN_PREFIX}x/{SID}.json", LOCK_KEY):
        assert parse_pin_key(key) is None


def test_pin_key_round_trips() -> None:
    assert pin_key(SID) == f".dr-tasks/pins/{SID}.json"
    assert parse_pin_key(pin_key(SID)) == SID


def test_backup_state_key_round_trips() -> None:
    for prefix in ("", "repo/", "a/b/"):
        assert parse_backup_state_key(backup_state_key(prefix)) == prefix
    assert backup_state_key("repo/") == "repo/.dr-tasks/backup-state.json"
    for key in ("repo/.dr-tasks/backup-state.jsonx", "repo.dr-tasks/backup-state.json", LOCK_KEY, "backup-state.json"):
        assert parse_backup_state_key(key) is None


def test_whole_second_stamps_round_trip() -> None:
    stamp = iso_utc(AT.replace(microsecond=250_000), whole_seconds=True)
    assert stamp == "2026-04-15T18:00:07Z"
    assert parse_iso(stamp) == AT
    assert iso_utc(AT.replace(microsecond=250_000)) == "2026-04-15T18:00:07.25Z"
    for bad in ("2026-04-15T18:00:07.25Z", "2026-04-15T18:00:07+00:00", "2026-04-15T18:00Z"):
        with pytest.raises(ValueError):
            parse_iso(bad)
