"""The bad-input sweep: hostile arguments, broken config, a garbage index, a missing bucket, wrong credentials.

Every case must end in exit code 1 (or 0 where the input is merely odd) with a
clear message, no traceback, and nothing changed: the repo's files (index
included) and the bucket's every version are compared before and after.
Commands of one case run in parallel against one moto bucket, so the whole
sweep stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pytest

from dr_tasks import take_snapshot
from tests.conftest import PLAIN_HOST_TASKS, bucket_state, local_tree, new_bucket

FILES = {"state/skills/alpha/a.txt": b"alpha\n", "state/notes/n.txt": b"note\n"}
SECRET = "s3cr3t-value-that-must-not-leak"

VALUES = {
    "empty": "",
    "huge": "x" * 10240,
    "unicode": "caf\u00e9-\u2603-\U0001d518-\u202e",
    "shell": "$(touch pwned); `touch pwned2` | echo ${HOME} > pwned3 ; '\" && rm -rf state",
    "newline": "a\nb",
}


def run_all(repo: Any, commands: list[tuple[str, ...]], env: dict[str, str] | None = None) -> list[Any]:
    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(lambda args: repo.run(*args, env=env), commands))


def problems(commands: list[tuple[str, ...]], results: list[Any], code: int = 1, needle: str = "") -> list[str]:
    """One line per command that crashed, exited wrongly, or did not say `needle`."""
    out = []
    for args, r in zip(commands, results, strict=True):
        shown = " ".join(a if len(a) < 40 else a[:37] + "..." for a in args)
        text = r.stdout + r.stderr
        if "Traceback" in text:
            out.append(f"{shown!r}: traceback: {r.stderr.strip().splitlines()[-1][:200]}")
        elif r.returncode != code:
            out.append(f"{shown!r}: exit {r.returncode}, expected {code}: {r.stderr.strip()[:200]}")
        elif code == 1 and not r.stderr.strip():
            out.append(f"{shown!r}: exit 1 without a message")
        elif needle and needle not in r.stderr:
            out.append(f"{shown!r}: no {needle!r} in: {r.stderr.strip()[:300]}")
    return out


def state(repo: Any) -> tuple[dict[str, bytes], Any]:
    return local_tree(repo.path), bucket_state(repo.server, repo.bucket)


@pytest.fixture
def repo(moto_server, make_repo) -> Any:
    """A moto-backed repo with files and one snapshot, so valid ids exist."""
    r = make_repo(moto_server, new_bucket(moto_server))
    r.seed(FILES)
    take_snapshot(r.cfg(), "base", now=datetime(2026, 1, 1, 10, tzinfo=timezone.utc))
    return r


SNAP = "2026-01-01T10:00:00Z-base"


# ---------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kind", list(VALUES))
def test_hostile_arguments_are_refused_and_change_nothing(repo, kind):
    v = VALUES[kind]
    commands: list[tuple[str, ...]] = [
        ("dr.snapshot", f"--label={v}"),
        ("dr.show", v),
        ("dr.pin", v),
        ("dr.pin", v, "--unpin"),
        ("dr.prune", f"--keep-last={v}", "--apply"),
        ("dr.prune", f"--keep-daily={v}", "--keep-last=1", "--apply"),
        ("dr.reindex", "--apply", v),
        ("dr.list", v),
        ("dr.drill", v),
    ]
    if kind in ("huge", "newline"):
        commands.append(("dr.pin", SNAP, f"--reason={v}"))
    before = state(repo)
    results = run_all(repo, commands)
    assert problems(commands, results) == []
    assert state(repo) == before
    for args, r in zip(commands, results, strict=True):
        if args[0] != "dr.reindex" and args[0] not in ("dr.list", "dr.drill"):
            # our own messages never echo 10 kB back, and stay on two lines (message, fix)
            assert len(r.stderr) < 600 and len(r.stderr.strip().splitlines()) <= 2, (args[:1], r.stderr[:300])


# ---------------------------------------------------------------------- config
def _yaml(**dr: Any) -> Callable[[Any], None]:
    return lambda repo: repo.write_config(**dr)


def _text(text: bytes) -> Callable[[Any], None]:
    return lambda repo: (repo.path / "invoke.yaml").write_bytes(text)


CONFIGS: dict[str, tuple[Callable[[Any], None], str]] = {
    "bucket-int": (_yaml(bucket=5), "config dr.bucket: must be a string"),
    "bucket-list": (_yaml(bucket=["a"]), "config dr.bucket: must be a string"),
    "prefix-int": (_yaml(prefix=5), "config dr.prefix"),
    "snapshot-prefix-list": (_yaml(snapshot_prefix=[]), "config dr.snapshot_prefix"),
    "snapshot-prefix-over-units": (_yaml(snapshot_prefix="state/"), "config dr.snapshot_prefix: 'state/' covers"),
    "snapshot-prefix-over-index": (_yaml(snapshot_prefix="state/log/"), "covers the live keys of index"),
    # Neither units nor the index, but files sync_allow pushes: they would drop out of every snapshot.
    "snapshot-prefix-over-notes": (
        _yaml(snapshot_prefix="state/notes/"),
        "config dr.snapshot_prefix: 'state/notes/' covers live keys: local paths under state/notes/ match "
        "sync_allow 'state/**'",
    ),
    "snapshot-prefix-under-prefix-over-allow": (
        _yaml(prefix="repo/", snapshot_prefix="repo/state/notes/"),
        "config dr.snapshot_prefix: 'repo/state/notes/' covers live keys",
    ),
    "snapshot-prefix-matched-anywhere": (
        _yaml(sync_allow=["state/**", "*.md"]),
        "local paths under snapshots/ match sync_allow '*.md'",
    ),
    "endpoint-int": (_yaml(endpoint_url=5), "config dr.endpoint_url"),
    "region-int": (_yaml(region=5), "config dr.region"),
    "root-int": (_yaml(root=5), "config dr.root"),
    "index-int": (_yaml(index=5), "config dr.index"),
    "index-mapping": (_yaml(index={"a": 1}), "config dr.index: must be a single value"),
    "units-int": (_yaml(units=5), "config dr.units"),
    "restore-dir-int": (_yaml(restore_dir=5), "config dr.restore_dir"),
    "allow-int": (_yaml(sync_allow=5), "config dr.sync_allow"),
    "deny-mapping": (_yaml(sync_deny={"a": 1}), "config dr.sync_deny"),
    "preserve-int": (_yaml(preserve=5), "config dr.preserve"),
    "retention-text": (_yaml(retention_days="x"), "config dr.retention_days"),
    "retention-bool": (_yaml(retention_days=True), "config dr.retention_days"),
    "retention-float": (_yaml(retention_days=1.5), "config dr.retention_days"),
    "concurrency-negative": (_yaml(concurrency=-1), "config dr.concurrency"),
    "backup-text": (_yaml(backup="x"), "config dr.backup: must be a mapping"),
    "backup-age-text": (_yaml(backup={"max_age_days": "x"}), "config dr.backup.max_age_days"),
    "backup-age-nan": (_yaml(backup={"max_age_days": float("nan")}), "config dr.backup.max_age_days"),
    "backup-age-inf": (_yaml(backup={"max_age_days": float("inf")}), "config dr.backup.max_age_days"),
    "backup-bucket-int": (_yaml(backup={"bucket": 5}), "config dr.backup.bucket"),
    "hooks-text": (_yaml(hooks="x"), "config dr.hooks: must be a mapping"),
    "hook-int": (_yaml(hooks={"post_snapshot": 5}), "config dr.hooks.post_snapshot"),
    "hook-unknown": (_yaml(hooks={"bogus": []}), "config dr.hooks.bogus"),
    "dr-int": (_text(b"dr: 5\n"), "config dr: must be a mapping"),
    "dr-list": (_text(b"dr: [1, 2]\n"), "config dr: must be a mapping"),
    "yaml-syntax": (_text(b"dr: {bucket: [\n"), "not valid YAML at line 2"),
    "yaml-tab": (_text(b"dr:\n\tbucket: x\n"), "not valid YAML at line 2"),
    "yaml-binary": (_text(b"\x00\xff\xfe"), "not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_wrong_config_is_one_line_and_sends_no_request(moto_server, make_repo, fault_proxy_moto, case):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    repo.seed(FILES)
    breaker, needle = CONFIGS[case]
    breaker(repo)
    commands = [("dr.snapshot", "--label=x"), ("dr.list",), ("dr.prune", "--keep-last=1", "--apply"), ("dr.pin", SNAP)]
    if case in ("bucket-int", "backup-text", "yaml-syntax"):
        commands += [("dr.show", SNAP), ("dr.reindex", "--apply"), ("dr.pin", SNAP, "--unpin")]
    before = state(repo)
    results = run_all(repo, commands)
    assert problems(commands, results, needle=needle) == []
    for r in results:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sum(fault_proxy_moto.counts.values()) == 0
    assert state(repo) == before


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"INVOKE_DR_CONCURRENCY": "many"}, "config dr.concurrency: $INVOKE_DR_CONCURRENCY must be a whole number"),
        ({"INVOKE_DR_SYNC_ALLOW": "state/**"}, "config dr.sync_allow: $INVOKE_DR_SYNC_ALLOW must be a JSON list"),
        ({"INVOKE_DR_BUCKET": "Not A Bucket"}, "config dr.bucket: 'Not A Bucket' is not a valid bucket name"),
    ],
)
def test_wrong_environment_variables_are_one_line(repo, env, needle):
    commands = [("dr.snapshot", "--label=x"), ("dr.list",), ("dr.prune", "--keep-last=1")]
    before = state(repo)
    results = run_all(repo, commands, env=env)
    assert problems(commands, results, needle=needle) == []
    assert state(repo) == before


# A host that did not call friendly_config_errors(): dr's own settings are still
# checked by dr, one line each; only Invoke's own parse failures stay Invoke's.
NOT_OPTED_IN: dict[str, tuple[Callable[[Any], None], str]] = {
    "bucket-missing": (_yaml(bucket=None), "config dr.bucket: is not set"),
    **{case: CONFIGS[case] for case in ("bucket-int", "retention-text", "hook-unknown", "snapshot-prefix-list")},
}


@pytest.mark.parametrize("case", list(NOT_OPTED_IN))
def test_a_host_that_did_not_opt_in_gets_dr_own_config_errors_as_one_line(moto_server, make_repo, case):
    repo = make_repo(moto_server, new_bucket(moto_server))
    (repo.path / "tasks.py").write_text(PLAIN_HOST_TASKS)
    breaker, needle = NOT_OPTED_IN[case]
    breaker(repo)
    commands = [("dr.snapshot", "--label=x"), ("dr.list",)]
    results = run_all(repo, commands)
    assert problems(commands, results, needle=needle) == []
    for r in results:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_invoke_parse_failures_are_invoke_own_unless_the_host_opts_in(moto_server, make_repo):
    """Not opted in, a YAML syntax error is Invoke's (a failure, its wording); the `dr` program opts itself in."""
    repo = make_repo(moto_server, new_bucket(moto_server))
    (repo.path / "tasks.py").write_text(PLAIN_HOST_TASKS)
    (repo.path / "invoke.yaml").write_bytes(b"dr: {bucket: [\n")
    plain = repo.run("dr.list")
    assert plain.returncode != 0 and "not valid YAML" not in plain.stderr
    (repo.path / "tasks.py").unlink()  # the program needs no tasks.py, only invoke.yaml
    own = repo.dr("list")
    assert own.returncode == 1 and "not valid YAML at line 2" in own.stderr, own.stderr
    assert len(own.stderr.strip().splitlines()) == 1, own.stderr


# ---------------------------------------------------------------------- the index
GARBAGE = [
    b"\xff\xfe not utf-8",
    b"[/]",
    b"null",
    b"[]",
    b'{"kind": 5}',
    b'{"kind": "snapshot"}',
    b'{"kind": "snapshot", "id": {"x": 1}, "label": ["[/]"], "ts": 5}',
    b'{"kind": "snapshot", "id": "[/]", "objects": "[red]x", "ts": "[bold]"}',
    b'{"kind": "pin", "id": [1], "pinned": "yes"}',
    b'{"kind": "pin", "id": "2026-01-01T10:00:00Z-base", "pinned": "[/]"}',
    b'{"kind": "prune", "deleted": {}, "orphans": 7}',
    b'{"kind": "rollback", "id": "[bold]", "snapshot": "2026-01-01T10:00:00Z-base"}',
    b'{"kind": "lock-break", "broken": null}',
    b"x" * 100_000,
    b'{"kind": "snapshot", "id": "' + b"a" * 5000 + b'"}',
]


def test_garbage_index_lines_are_reported_never_a_crash(repo):
    good = repo.index_bytes()
    repo.index_path.write_bytes(b"\n".join(GARBAGE[:7]) + b"\n" + good + b"\n".join(GARBAGE[7:]) + b"\n" + b'{"torn')
    commands: list[tuple[str, ...]] = [
        ("dr.list",),
        ("dr.list", "--json"),
        ("dr.show", SNAP),
        ("dr.show", SNAP, "--json"),
        ("dr.reindex",),
        ("dr.prune", "--keep-last=1"),
        ("dr.prune", "--keep-last=1", "--json"),
    ]
    before = state(repo)
    results = run_all(repo, commands)
    assert problems(commands, results, code=0) == []
    assert state(repo) == before
    assert "line 1: not valid JSON" in results[0].stderr
    assert SNAP in results[0].stdout
    assert json.loads(results[1].stdout)["snapshots"]
    # A row of a known kind with a field of the wrong type is a bad line, not a snapshot.
    assert "snapshot row field 'objects' is str, not a whole number" in results[0].stderr
    refused = [("dr.pin", "2026-01-01T10:00:00Z-nope"), ("dr.show", "nope"), ("dr.show", "[/]")]
    assert problems(refused, run_all(repo, refused)) == []
    assert state(repo) == before
    # a snapshot still works, and keeps every garbage byte where it was
    data = repo.index_bytes()
    r = repo.run("dr.snapshot", "--label=after", "--json")
    assert r.returncode == 0, r.stderr
    assert repo.index_bytes().startswith(data + b"\n")


# ---------------------------------------------------------------------- bucket and credentials
OPS = [
    ("dr.snapshot", "--label=x"),
    ("dr.reindex",),
    ("dr.reindex", "--apply"),
    ("dr.prune", "--keep-last=1"),
    ("dr.prune", "--keep-last=1", "--apply"),
    ("dr.pin", SNAP),
    ("dr.pin", SNAP, "--unpin"),
]


def test_a_bucket_that_does_not_exist_is_named(moto_server, make_repo):
    repo = make_repo(moto_server, "no-such-bucket-" + "q" * 8)
    repo.index_path.write_bytes(
        json.dumps({"v": 1, "kind": "snapshot", "id": SNAP, "ts": "2026-01-01T10:00:00Z", "label": "base"}).encode()
        + b"\n"
    )
    before = local_tree(repo.path)
    results = run_all(repo, OPS)
    assert problems(OPS, results, needle="NoSuchBucket") == []
    assert all("check dr.bucket" in r.stderr for r in results)
    assert problems([("dr.list",)], [repo.run("dr.list")], code=0) == []
    assert local_tree(repo.path) == before
    names = [b["Name"] for b in moto_server.client().list_buckets()["Buckets"]]
    assert repo.bucket not in names  # nothing created it


def test_missing_credentials_and_profile_are_named(repo):
    before = state(repo)
    no_creds = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true"}
    results = run_all(repo, OPS, env=no_creds)
    assert problems(OPS, results, needle="no credentials found") == []
    repo.write_config(profile="nosuch")
    after_config = local_tree(repo.path)
    results = run_all(repo, OPS)
    assert problems(OPS, results, needle="credentials profile 'nosuch' was not found") == []
    assert local_tree(repo.path) == after_config
    assert bucket_state(repo.server, repo.bucket) == before[1]


@pytest.mark.rgw
def test_wrong_credentials_are_named_and_the_secret_never_printed(rgw_server, make_repo):
    """moto accepts any signature, so this one needs the RGW."""
    bucket = new_bucket(rgw_server)
    repo = make_repo(rgw_server, bucket)
    repo.seed(FILES)
    take_snapshot(repo.cfg(), "base", now=datetime(2026, 1, 1, 10, tzinfo=timezone.utc))
    before = state(repo)
    results = run_all(repo, OPS, env={"AWS_SECRET_ACCESS_KEY": SECRET})
    assert problems(OPS, results, needle="SignatureDoesNotMatch") == []
    results += run_all(repo, OPS, env={"AWS_ACCESS_KEY_ID": "AKIDUNKNOWN", "AWS_SECRET_ACCESS_KEY": SECRET})
    assert problems(OPS, results[len(OPS) :], needle="InvalidAccessKeyId") == []
    for r in results:
        assert SECRET not in r.stdout + r.stderr
    assert state(repo) == before


# ---------------------------------------------------------------------- --help after a task with a positional
@pytest.mark.parametrize(
    "args",
    [("dr.snapshot", "--help"), ("dr.restore", "alpha", "-h"), ("dr.show", "--help"), ("dr.rollback", "-h")],
)
def test_help_given_where_a_positional_is_due_points_at_the_help(repo, args):
    """Invoke gives a task's pending positional the next word, `--help` too; we say so instead of using it."""
    before = state(repo)
    r = repo.run(*args)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"inv --help {args[0]}" in r.stderr, r.stderr
    assert "invalid label" not in r.stderr and "did not receive" not in r.stderr, r.stderr
    assert state(repo) == before
