"""Config typos and list keys from the environment (issue 18, items 1 and 2), through `inv` and `dr`.

A key dr does not know is refused before any request, naming the key, its
section and the nearest valid key; Invoke's own keys beside `dr:` and a
collection mounted under another name are left alone. `INVOKE_DR_<KEY>` takes
a JSON list for list keys, so a hook set in invoke.yaml can be switched off
for one run; a value that is not one is refused naming the variable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.conftest import PLAIN_HOST_TASKS, bucket_state, local_tree, new_bucket

FILES = {"state/skills/alpha/a.txt": b"alpha\n", "state/notes/n.txt": b"note\n"}


def _state(repo: Any) -> tuple[dict[str, bytes], Any]:
    return local_tree(repo.path), bucket_state(repo.server, repo.bucket)


def _one_line_refusal(r: Any, needle: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert needle in r.stderr, r.stderr


# ---------------------------------------------------------------------- unknown keys
TYPOS: dict[str, tuple[dict[str, Any], str]] = {
    "endpoint": (
        {"endpoint": "https://tor1.digitaloceanspaces.com"},
        "config dr.endpoint: unknown key in section dr (did you mean dr.endpoint_url?)",
    ),
    "retention": (
        {"retention": 30},
        "config dr.retention: unknown key in section dr (did you mean dr.retention_days?)",
    ),
    "backup-endpoint": (
        {"backup": {"endpoint": "https://fra1.digitaloceanspaces.com"}},
        "config dr.backup.endpoint: unknown key in section dr.backup (did you mean dr.backup.endpoint_url?)",
    ),
    "hook-typo": (
        {"hooks": {"post_snaphot": ["echo never"]}},
        "config dr.hooks.post_snaphot: unknown key in section dr.hooks (did you mean dr.hooks.post_snapshot?)",
    ),
    "hook-of-a-task-without-hooks": (
        {"hooks": {"post_drill": ["echo never"]}},
        "config dr.hooks.post_drill: dr.drill runs no hooks",
    ),
    "drill-typo": (
        {"drill": {"max_age": 7}},
        "config dr.drill.max_age: unknown key in section dr.drill (did you mean dr.drill.max_age_days?)",
    ),
    # Invoke itself trips on this one (two keys, one INVOKE_DR_BACKUP_BUCKET) before dr runs.
    "flat-backup-bucket": (
        {"backup_bucket": "cold-bucket"},
        "config dr.backup_bucket: unknown key in section dr (did you mean dr.backup.bucket?)",
    ),
    "nothing-close": (
        {"zzz": 1},
        "config dr.zzz: unknown key in section dr; fix: remove it (known keys: bucket, prefix",
    ),
}


@pytest.mark.parametrize("case", list(TYPOS))
def test_an_unknown_key_is_refused_before_any_request(server, make_repo, fault_proxy, case):
    repo = make_repo(server, new_bucket(server), endpoint_url=fault_proxy.url)
    repo.seed(FILES)
    extra, needle = TYPOS[case]
    repo.write_config(**extra)
    before = _state(repo)
    fault_proxy.clear()
    for r in (repo.run("dr.snapshot", "--label=x"), repo.run("dr.list"), repo.dr("snapshot", "--label=x")):
        _one_line_refusal(r, needle)
    assert sum(fault_proxy.counts.values()) == 0
    assert _state(repo) == before


def test_the_drill_refuses_a_typo_too(moto_server, make_repo):
    """The drill reads the layout keys itself; a typo there must not pass silently either."""
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.write_config(sync_denny=["secrets/**"])
    _one_line_refusal(
        repo.run("dr.drill"), "config dr.sync_denny: unknown key in section dr (did you mean dr.sync_deny?)"
    )


def test_every_unknown_key_is_named_in_the_one_line(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.write_config(endpoint="http://x", hooks={"post_snaphot": []})
    r = repo.run("dr.list")
    _one_line_refusal(r, "config dr.endpoint: unknown key")
    assert "dr.hooks.post_snaphot" in r.stderr


MOUNTS = {
    "add_collection": (
        "from invoke import Collection, task\nfrom dr_tasks import dr\n\n"
        "@task\ndef hello(c):\n    print('hello')\n\n"
        "ns = Collection(hello)\nns.add_collection(dr, name='disaster')\n"
    ),
    "from_module": (
        "from invoke import Collection\nimport dr_tasks.tasks\n\n"
        "ns = Collection(Collection.from_module(dr_tasks.tasks, name='disaster'))\n"
    ),
}


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_invoke_own_keys_and_a_collection_mounted_under_another_name_are_not_refused(server, make_repo, mount):
    """A real invoke.yaml carries Invoke's own sections beside `dr:`; none of them is dr's to judge."""
    repo = make_repo(server, new_bucket(server))
    repo.seed(FILES)
    (repo.path / "tasks.py").write_text(MOUNTS[mount])
    config = {
        "dr": {**repo.config, "hooks": {"post_snapshot": ["echo hooked > hook.out"]}},
        "run": {"echo": False, "warn": False},
        "tasks": {"auto_dash_names": True, "dedupe": True},
        "timeouts": {"command": None},
        "sudo": {"prompt": "[sudo] password: "},
    }
    (repo.path / "invoke.yaml").write_text(yaml.safe_dump(config))
    r = repo.run("disaster.snapshot", "--label=mounted", "--json")
    assert r.returncode == 0, r.stderr
    assert (repo.path / "hook.out").read_text().strip() == "hooked"
    assert json.loads(r.stdout)["label"] == "mounted"
    r = repo.run("disaster.list")
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------- list keys from the environment
def test_a_hook_set_in_invoke_yaml_is_switched_off_for_one_run_with_an_empty_json_list(server, make_repo):
    repo = make_repo(server, new_bucket(server))
    repo.seed(FILES)
    repo.write_config(hooks={"post_snapshot": ["echo hooked > hook.out"]})
    r = repo.run("dr.snapshot", "--label=quiet", env={"INVOKE_DR_HOOKS_POST_SNAPSHOT": "[]"})
    assert r.returncode == 0, r.stderr
    assert not (repo.path / "hook.out").exists()
    r = repo.dr("snapshot", "--label=quiet2", env={"INVOKE_DR_HOOKS_POST_SNAPSHOT": "[]"})
    assert r.returncode == 0, r.stderr
    assert not (repo.path / "hook.out").exists()
    # Without the variable the hook runs again: the switch lasted one run.
    r = repo.run("dr.snapshot", "--label=loud")
    assert r.returncode == 0, r.stderr
    assert (repo.path / "hook.out").read_text().strip() == "hooked"


@pytest.mark.parametrize("tasks_py", ["opted-in", "plain"])
def test_a_json_list_in_the_environment_sets_a_list_key_invoke_yaml_leaves_unset(server, make_repo, tasks_py):
    repo = make_repo(server, new_bucket(server))
    if tasks_py == "plain":
        (repo.path / "tasks.py").write_text(PLAIN_HOST_TASKS)
    repo.seed(FILES)
    env = {"INVOKE_DR_HOOKS_POST_SNAPSHOT": json.dumps(["echo one > one.out", "echo two > two.out"])}
    r = repo.run("dr.snapshot", "--label=env", env=env)
    assert r.returncode == 0, r.stderr
    assert (repo.path / "one.out").exists() and (repo.path / "two.out").exists()


def test_preserve_from_the_environment_reaches_the_rollback_plan(server, make_repo):
    repo = make_repo(server, new_bucket(server))
    repo.seed(FILES)
    r = repo.run("dr.snapshot", "--label=good", "--json")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)["id"]
    repo.server.client().put_object(Bucket=repo.bucket, Key="state/notes/later.txt", Body=b"later\n")
    env = {"INVOKE_DR_PRESERVE": '["state/notes/**"]'}
    plan = json.loads(repo.run("dr.rollback", snap, "--json", env=env).stdout)
    assert "state/notes/later.txt" in [i["key"] for i in plan["preserved"]]
    assert plan["delete"] == []
    plan = json.loads(repo.run("dr.rollback", snap, "--json").stdout)
    assert [i["key"] for i in plan["delete"]] == ["state/notes/later.txt"]


BAD_ENV = {
    "plain-text": ("INVOKE_DR_SYNC_DENY", "state/**"),
    "not-json": ("INVOKE_DR_SYNC_ALLOW", "[state/**"),
    "not-a-list": ("INVOKE_DR_PRESERVE", '{"a": 1}'),
    "not-strings": ("INVOKE_DR_HOOKS_POST_SNAPSHOT", '["inv sync.push", 5]'),
}


@pytest.mark.parametrize("case", list(BAD_ENV))
@pytest.mark.parametrize("yaml_sets_it", [False, True])
def test_a_list_variable_that_is_not_a_json_list_is_refused_naming_it(
    server, make_repo, fault_proxy, case, yaml_sets_it
):
    repo = make_repo(server, new_bucket(server), endpoint_url=fault_proxy.url)
    repo.seed(FILES)
    var, value = BAD_ENV[case]
    if yaml_sets_it:
        repo.write_config(
            sync_allow=["state/**"], sync_deny=["tmp/**"], preserve=[], hooks={"post_snapshot": ["echo x > hook.out"]}
        )
    key = var.removeprefix("INVOKE_DR_").lower().replace("hooks_", "hooks.")
    before = _state(repo)
    fault_proxy.clear()
    for r in (repo.run("dr.snapshot", "--label=x", env={var: value}), repo.dr("list", env={var: value})):
        _one_line_refusal(r, f"config dr.{key}: ${var} must be a JSON list of strings, got {value!r}")
        assert f"e.g. {var}='[" in r.stderr, r.stderr
    assert sum(fault_proxy.counts.values()) == 0
    assert _state(repo) == before
