"""Hints name the command the user can type: the host's mount (`inv disaster.*`), or the `dr` program (`dr *`).

Operations write their hints as `inv dr.<task>`; the task layer learns the
name Invoke called it under and rewrites them once, at the edge.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import HostRepo, Server, assert_clean_refusal, new_bucket

# The README's way to mount it beside the host's own collections, under another name.
MOUNTED = (
    "from invoke import Collection\nfrom dr_tasks import dr, friendly_config_errors\n\n"
    "friendly_config_errors()\nns = Collection()\nns.add_collection(dr, name='disaster')\n"
)
# The brief's way: the package's module as a collection, renamed.
FROM_MODULE = (
    "from invoke import Collection\nimport dr_tasks.tasks\n\n"
    "ns = Collection()\nns.add_collection(Collection.from_module(dr_tasks.tasks, name='disaster'))\n"
)


def _snapshot_with_a_change(repo: HostRepo, program: str) -> str:
    repo.seed()
    if program == "inv":
        r = repo.run("disaster.snapshot", "--label=good", "--json")
    else:
        r = repo.dr("snapshot", "--label=good", "--json")
    assert r.returncode == 0, r.stderr
    repo.server.client().put_object(Bucket=repo.bucket, Key="state/skills/alpha/a.txt", Body=b"changed")
    return str(json.loads(r.stdout)["id"])


@pytest.mark.parametrize("tasks_py", [MOUNTED, FROM_MODULE], ids=["add_collection", "from_module"])
def test_a_host_mounting_it_as_disaster_gets_disaster_in_every_hint(server: Server, make_repo, tasks_py: str):
    repo = make_repo(server, new_bucket(server))
    (repo.path / "tasks.py").write_text(tasks_py)
    snap_id = _snapshot_with_a_change(repo, "inv")

    # a plan's hint, in the text and in --json
    plan = repo.run("disaster.rollback", snap_id)
    assert_clean_refusal(
        plan, "disaster.rollback: not applied", f"to apply it, run: inv disaster.rollback {snap_id} --apply"
    )
    assert "inv dr." not in plan.stdout + plan.stderr
    data = json.loads(repo.run("disaster.rollback", snap_id, "--json").stdout)
    assert data["apply_command"].startswith(f"inv disaster.rollback {snap_id} --apply")

    # a refusal's hint, written by an operation
    unknown = repo.run("disaster.rollback", "2020-01-01T00:00:00Z-nope")
    assert_clean_refusal(unknown, "disaster.rollback: unknown snapshot id", "`inv disaster.list`")
    assert "inv dr." not in unknown.stderr

    # an alias keeps the mount, and a task's own verdict (Exit) is rewritten too
    applied = repo.run("disaster.rollback", snap_id, "--apply", "--confirm-label=good")
    assert applied.returncode == 0, applied.stderr
    assert "undo with: inv disaster.rollback " in applied.stdout
    unversioned = make_repo(server, new_bucket(server, versioned=False))
    (unversioned.path / "tasks.py").write_text(tasks_py)
    r = unversioned.run("disaster.versioning")
    assert_clean_refusal(r, "disaster.versioning: s3://", "fix: inv disaster.versioning --enable")
    r = unversioned.run("disaster.verify")
    assert r.returncode == 1 and "disaster.verify: " in r.stderr
    assert "inv disaster.versioning --enable" in r.stdout and "inv dr." not in r.stdout + r.stderr


def test_the_dr_program_says_dr_task(moto_server: Server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    (repo.path / "tasks.py").unlink()  # the program needs no tasks.py
    snap_id = _snapshot_with_a_change(repo, "dr")

    plan = repo.dr("rollback", snap_id)
    assert_clean_refusal(plan, "dr rollback: not applied", f"to apply it, run: dr rollback {snap_id} --apply")
    unknown = repo.dr("rollback", "2020-01-01T00:00:00Z-nope")
    assert_clean_refusal(unknown, "dr rollback: unknown snapshot id", "`dr list`")
    reindex = repo.dr("reindex")
    assert reindex.returncode == 0 and "the index is complete" in reindex.stdout
    for r in (plan, unknown, reindex):
        assert "inv dr." not in r.stdout + r.stderr


def test_the_default_mount_keeps_inv_dr(moto_server: Server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    r = repo.run("dr.rollback", "2020-01-01T00:00:00Z-nope")
    assert_clean_refusal(r, "dr.rollback: unknown snapshot id", "`inv dr.list`")
    r = repo.run("dr.cross-region-backup")  # an alias: the hints still name the collection the host mounted
    assert_clean_refusal(r, "dr.backup: config dr.backup.bucket")
