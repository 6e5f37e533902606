from __future__ import annotations

from pathlib import Path

import pytest

from dr_tasks import ConfigError, load_config
from dr_tasks.config import DEFAULTS, META_PREFIX


def test_defaults_declare_every_design_key():
    for key in (
        "bucket",
        "prefix",
        "snapshot_prefix",
        "endpoint_url",
        "region",
        "profile",
        "root",
        "index",
        "units",
        "restore_dir",
        "sync_allow",
        "sync_deny",
        "preserve",
        "retention_days",
        "concurrency",
        "backup",
        "hooks",
    ):
        assert key in DEFAULTS
    for key in ("bucket", "prefix", "endpoint_url", "region", "profile", "max_age_days"):
        assert key in DEFAULTS["backup"]
    assert DEFAULTS["hooks"]["post_snapshot"] == []


def test_minimal_config(tmp_path: Path):
    cfg = load_config({"bucket": "my-state"}, tmp_path)
    assert cfg.bucket == "my-state"
    assert cfg.root == tmp_path.resolve()
    assert cfg.preserve == ("state/log/snapshots.ndjson",)
    assert cfg.concurrency == 32 and cfg.retention_days == 30
    assert cfg.backup.endpoint is None and cfg.backup.max_age_days == 7
    assert cfg.is_live_key("state/a.txt")
    assert not cfg.is_live_key("snapshots/x/state/a.txt")
    assert not cfg.is_live_key(META_PREFIX + "lock.json")


def test_prefix_maps_paths_to_keys(tmp_path: Path):
    cfg = load_config({"bucket": "my-state", "prefix": "repo/"}, tmp_path)
    assert cfg.key_for("state/a.txt") == "repo/state/a.txt"
    assert cfg.rel_for("repo/state/a.txt") == "state/a.txt"
    assert not cfg.is_live_key("other/state/a.txt")


def test_overrides_win_and_none_overrides_are_ignored(tmp_path: Path):
    cfg = load_config({"bucket": "a-bucket", "concurrency": 4}, tmp_path, concurrency=2, region=None)
    assert cfg.concurrency == 2


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({}, "dr.bucket"),
        ({"bucket": "s3://x"}, "dr.bucket"),
        ({"bucket": "ab"}, "dr.bucket"),
        ({"bucket": "ok-bucket", "endpoint_url": "ftp://x"}, "dr.endpoint_url"),
        ({"bucket": "ok-bucket", "concurrency": 0}, "dr.concurrency"),
        ({"bucket": "ok-bucket", "concurrency": True}, "dr.concurrency"),
        ({"bucket": "ok-bucket", "retention_days": "x"}, "dr.retention_days"),
        ({"bucket": "ok-bucket", "prefix": "/abs/"}, "dr.prefix"),
        ({"bucket": "ok-bucket", "prefix": "a/../b/"}, "dr.prefix"),
        ({"bucket": "ok-bucket", "snapshot_prefix": ""}, "dr.snapshot_prefix"),
        ({"bucket": "ok-bucket", "prefix": "snapshots/live/"}, "dr.prefix"),
        ({"bucket": "ok-bucket", "snapshot_prefix": "state/"}, "dr.snapshot_prefix"),
        ({"bucket": "ok-bucket", "snapshot_prefix": "state/log/"}, "dr.snapshot_prefix"),
        ({"bucket": "ok-bucket", "restore_dir": "../out"}, "dr.restore_dir"),
        ({"bucket": "ok-bucket", "sync_allow": 5}, "dr.sync_allow"),
        ({"bucket": "ok-bucket", "hooks": {"after_snapshot": []}}, "dr.hooks.after_snapshot"),
        ({"bucket": "ok-bucket", "backup": {"bucket": "Bad/Name"}}, "dr.backup.bucket"),
        ({"bucket": "ok-bucket", "backup": {"max_age_days": "soon"}}, "dr.backup.max_age_days"),
        ({"bucket": "ok-bucket", "region": 5}, "dr.region"),
    ],
)
def test_bad_settings_name_the_key_and_the_fix(tmp_path: Path, raw, key):
    with pytest.raises(ConfigError) as info:
        load_config(raw, tmp_path)
    text = str(info.value)
    assert text.startswith(f"config {key}:"), text
    assert "fix:" in text and "\n" not in text


def test_the_index_is_preserved_whatever_preserve_lists(tmp_path: Path):
    cfg = load_config({"bucket": "ok-bucket", "preserve": ["state/keep/**"]}, tmp_path)
    assert cfg.preserve == ("state/keep/**", "state/log/snapshots.ndjson")
    cfg = load_config({"bucket": "ok-bucket", "index": "state/idx.ndjson", "preserve": []}, tmp_path)
    assert cfg.preserve == ("state/idx.ndjson",)


def test_concurrency_from_an_env_var_string(tmp_path: Path):
    assert load_config({"bucket": "ok-bucket", "concurrency": "8"}, tmp_path).concurrency == 8


@pytest.mark.parametrize(
    "raw",
    [
        {"snapshot_prefix": "state/notes/"},
        {"snapshot_prefix": "state/notes/deep/"},
        {"prefix": "p/", "snapshot_prefix": "p/state/x/"},
        {"sync_allow": ["state/**", "snap*/x"]},
        {"sync_allow": ["**/*.md"]},
        {"sync_allow": ["/snapshots"]},
        {"sync_allow": ["state/**", "*.md"], "sync_deny": ["snapshots/*.txt"]},
    ],
)
def test_a_snapshot_prefix_a_pushed_local_path_could_map_under_is_refused(tmp_path: Path, raw):
    with pytest.raises(ConfigError) as info:
        load_config({"bucket": "ok-bucket", **raw}, tmp_path)
    assert info.value.key == "snapshot_prefix" and "covers live keys" in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"snapshot_prefix": "snaps/"},
        {"prefix": "p/", "snapshot_prefix": "snapshots/"},  # outside prefix: no local path maps there
        {"prefix": "p/", "snapshot_prefix": "p/snapshots/"},
        {"sync_allow": ["**"], "sync_deny": ["snapshots/**"]},
        {"sync_allow": ["*.md"], "sync_deny": ["snapshots/"]},
        {"snapshot_prefix": "_restore/"},  # the holding dir is never pushed
        {"sync_allow": ["state/**", "!snapshots/**"]},
    ],
)
def test_a_snapshot_prefix_no_pushed_local_path_maps_under_is_accepted(tmp_path: Path, raw):
    load_config({"bucket": "ok-bucket", **raw}, tmp_path)
