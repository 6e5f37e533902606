from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dr_tasks import ConfigError, load_config
from dr_tasks.config import DECLARED, DEFAULTS, META_PREFIX, check_keys, from_invoke
from dr_tasks.hooks import hook_path


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
    assert DEFAULTS["drill"] == {"max_age_days": None}  # issue 19 reads it


def test_list_keys_are_declared_null_so_invoke_passes_their_variable_through():
    """Invoke cannot cast an env string to a list; a null declaration hands dr the text to read as JSON."""
    for key in ("sync_allow", "sync_deny", "preserve"):
        assert DECLARED[key] is None
    assert set(DECLARED["hooks"]) == set(DEFAULTS["hooks"])
    assert all(v is None for v in DECLARED["hooks"].values())
    assert DECLARED["backup"] == DEFAULTS["backup"] and DECLARED["concurrency"] == DEFAULTS["concurrency"]


def test_the_declared_defaults_load_as_the_defaults(tmp_path: Path):
    """What Invoke hands over when invoke.yaml leaves list keys unset (null) means their defaults."""
    declared = load_config(from_invoke({**DECLARED, "bucket": "ok-bucket"}, {}), tmp_path)
    assert declared == load_config({"bucket": "ok-bucket"}, tmp_path)
    assert declared.sync_deny == ("_restore/**",) and declared.sync_allow == ("state/**",)
    assert declared.hooks["post_snapshot"] == ()


@pytest.mark.parametrize(
    ("raw", "start", "suggestion"),
    [
        ({"endpoint": "x"}, "config dr.endpoint: unknown key in section dr", "dr.endpoint_url"),
        ({"buckets": "x"}, "config dr.buckets: unknown key in section dr", "dr.bucket"),
        ({"sync_denny": []}, "config dr.sync_denny: unknown key in section dr", "dr.sync_deny"),
        (
            {"backup": {"endpoint": "x"}},
            "config dr.backup.endpoint: unknown key in section dr.backup",
            "dr.backup.endpoint_url",
        ),
        ({"backup": {"max_age": 3}}, "config dr.backup.max_age: unknown key", "dr.backup.max_age_days"),
        (
            {"hooks": {"post_snaphot": []}},
            "config dr.hooks.post_snaphot: unknown key in section dr.hooks",
            "dr.hooks.post_snapshot",
        ),
        ({"hooks": {"pre-rollback": []}}, "config dr.hooks.pre-rollback: unknown key", "dr.hooks.pre_rollback"),
        ({"backup_bucket": "x"}, "config dr.backup_bucket: unknown key in section dr", "dr.backup.bucket"),
        ({"hooks_post_snapshot": []}, "config dr.hooks_post_snapshot: unknown key", "dr.hooks.post_snapshot"),
        (
            {"drill": {"max_age": 3}},
            "config dr.drill.max_age: unknown key in section dr.drill",
            "dr.drill.max_age_days",
        ),
    ],
)
def test_an_unknown_key_names_its_section_and_the_nearest_known_key(tmp_path: Path, raw, start, suggestion):
    with pytest.raises(ConfigError) as info:
        load_config({"bucket": "ok-bucket", **raw}, tmp_path)
    text = str(info.value)
    assert text.startswith(start) and f"(did you mean {suggestion}?)" in text, text
    assert "fix:" in text and "\n" not in text


def test_an_unknown_key_with_nothing_close_lists_the_known_keys():
    with pytest.raises(ConfigError) as info:
        check_keys({"zzz": 1})
    assert "did you mean" not in str(info.value) and "known keys: bucket, prefix," in str(info.value)
    with pytest.raises(ConfigError) as info:
        check_keys({"hooks": {"whenever": ["x"]}})
    assert "pre_<task> or post_<task> for one of: snapshot," in str(info.value)


@pytest.mark.parametrize("name", ["pre_list", "post_show", "post_drill"])
def test_a_hook_for_a_task_that_runs_none_is_refused(name):
    with pytest.raises(ConfigError) as info:
        check_keys({"hooks": {name: ["inv sync.push"]}})
    assert "runs no hooks" in str(info.value)


def test_known_keys_and_sections_given_as_other_types_pass_the_key_check():
    """A section that is not a mapping is the type check's to report, not the key check's."""
    check_keys({k: v for k, v in DEFAULTS.items()})
    check_keys({"backup": "x", "hooks": None, "drill": 5})
    with pytest.raises(ConfigError, match=r"config dr\.backup: must be a mapping"):
        load_config({"bucket": "ok-bucket", "backup": "x"})


def test_every_unknown_key_is_on_the_one_line():
    with pytest.raises(ConfigError) as info:
        check_keys({"hooks": {"post_snaphot": []}, "endpoint": "x", "backup": {"regoin": "x"}})
    text = str(info.value)
    assert text.startswith("config dr.endpoint:") and "(also unknown: " in text
    assert "dr.hooks.post_snaphot" in text and "dr.backup.regoin" in text


ENV_CASES = [
    ("sync_deny", "INVOKE_DR_SYNC_DENY", '["a/**", "b/**"]', ("a/**", "b/**")),
    ("sync_allow", "INVOKE_DR_SYNC_ALLOW", "[]", ()),
    ("preserve", "INVOKE_DR_PRESERVE", '["state/keep/**"]', ("state/keep/**", "state/log/snapshots.ndjson")),
]


@pytest.mark.parametrize(("key", "var", "text", "expected"), ENV_CASES)
def test_a_list_key_from_its_variable_is_read_as_json(tmp_path: Path, key, var, text, expected):
    raw = from_invoke({"bucket": "ok-bucket", key: text}, {var: text})
    assert getattr(load_config(raw, tmp_path), key) == expected


def test_a_hook_switched_off_by_its_variable(tmp_path: Path):
    var = "INVOKE_DR_HOOKS_POST_SNAPSHOT"
    raw = from_invoke({"bucket": "ok-bucket", "hooks": {"post_snapshot": "[]", "pre_snapshot": ["x"]}}, {var: "[]"})
    cfg = load_config(raw, tmp_path)
    assert cfg.hooks["post_snapshot"] == () and cfg.hooks["pre_snapshot"] == ("x",)


def test_a_string_from_invoke_yaml_stays_a_one_item_list(tmp_path: Path):
    """Only the variable's exact text is read as JSON: `sync_deny: "[abc]*"` in invoke.yaml is a glob."""
    raw = from_invoke({"bucket": "ok-bucket", "sync_deny": "[abc]*"}, {"INVOKE_DR_SYNC_DENY": "other"})
    assert load_config(raw, tmp_path).sync_deny == ("[abc]*",)


@pytest.mark.parametrize("text", ["state/**", "[state/**", '{"a": 1}', '["a", 5]', "null", '"a"', "x" * 200])
def test_a_list_variable_that_is_not_a_json_list_names_it_and_shows_an_example(text):
    var = "INVOKE_DR_SYNC_DENY"
    with pytest.raises(ConfigError) as info:
        from_invoke({"sync_deny": text}, {var: text})
    msg = str(info.value)
    shown = text if len(text) <= 80 else text[:77] + "..."
    assert msg.startswith(f"config dr.sync_deny: ${var} must be a JSON list of strings, got {shown!r}"), msg
    assert f"fix: e.g. {var}='[" in msg and f"{var}='[]'" in msg and "\n" not in msg


def test_hook_commands_get_the_interpreter_bin_dir_first_on_path(monkeypatch):
    bin_dir = str(Path(sys.executable).parent)
    assert hook_path("/usr/bin:/bin") == f"{bin_dir}:/usr/bin:/bin"
    assert hook_path(f"/usr/bin:{bin_dir}:/bin") == f"{bin_dir}:/usr/bin:/bin"
    monkeypatch.setenv("PATH", "/opt/x")
    assert hook_path() == f"{bin_dir}:/opt/x"


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
