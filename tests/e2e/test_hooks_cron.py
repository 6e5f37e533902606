"""Hooks as cron runs them (issue 18, item 4): a minimal PATH, and a post hook that fails after the commit.

Cron gives a job `PATH=/usr/bin:/bin`, so the README's `post_snapshot: ["inv sync.push"]`
found no `inv` (exit 127) when the venv's `inv` was called by its absolute path.
Hook commands run with the running interpreter's bin directory first on PATH.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

from tests.conftest import INV, new_bucket

CRON_PATH = "/usr/bin:/bin"
FILES = {"state/skills/alpha/a.txt": b"alpha\n", "state/notes/n.txt": b"note\n"}

SYNC_TASKS = """
from invoke import Collection, task
from dr_tasks import dr


@task
def push(c):
    open("pushed.out", "w").write("pushed\\n")


ns = Collection(dr, Collection("sync", push))
"""


def test_the_venv_bin_dir_is_not_on_the_cron_path():
    """The premise: under cron's PATH there is no `inv` to find, so only the fix can make the hook work."""
    bin_dir = str(Path(sys.executable).parent)
    assert bin_dir not in CRON_PATH.split(":")
    assert not any(os.access(os.path.join(d, "inv"), os.X_OK) for d in CRON_PATH.split(":"))


def test_an_inv_hook_runs_under_cron_path(server, make_repo):
    repo = make_repo(server, new_bucket(server))
    repo.seed(FILES)
    (repo.path / "tasks.py").write_text(SYNC_TASKS)
    repo.write_config(hooks={"post_snapshot": ["inv sync.push"]})
    r = repo.run("dr.snapshot", "--label=cron", program=INV, env={"PATH": CRON_PATH})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (repo.path / "pushed.out").read_text() == "pushed\n"
    # The `dr` program, by absolute path too: the same hooks, the same PATH.
    (repo.path / "pushed.out").unlink()
    r = repo.dr("snapshot", "--label=cron2", env={"PATH": CRON_PATH})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (repo.path / "pushed.out").read_text() == "pushed\n"


def test_a_hook_command_keeps_the_rest_of_path_and_the_host_run_env(server, make_repo):
    repo = make_repo(server, new_bucket(server))
    repo.seed(FILES)
    repo.write_config(hooks={"pre_snapshot": ['echo "$PATH $HOST_VAR" > path.out']})
    config = yaml.safe_load((repo.path / "invoke.yaml").read_text())
    (repo.path / "invoke.yaml").write_text(yaml.safe_dump({**config, "run": {"env": {"HOST_VAR": "kept"}}}))
    r = repo.run("dr.snapshot", "--label=path", env={"PATH": CRON_PATH})
    assert r.returncode == 0, r.stderr
    path, host_var = (repo.path / "path.out").read_text().split()
    # Not resolved through symlinks: a venv's python is a symlink to the base interpreter.
    assert path.split(os.pathsep) == [str(Path(sys.executable).parent), *CRON_PATH.split(":")]
    assert host_var == "kept"


def test_a_failing_post_hook_says_the_snapshot_is_committed_and_what_to_rerun(server, make_repo):
    repo = make_repo(server, new_bucket(server))
    repo.seed(FILES)
    repo.write_config(hooks={"post_snapshot": ["echo first > first.out", "exit 7", "echo later > later.out"]})
    r = repo.run("dr.snapshot", "--label=committed", "--json", env={"PATH": CRON_PATH})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    rows = repo.index_rows()
    assert [row["kind"] for row in rows] == ["snapshot"]
    snap = rows[0]["id"]
    assert json.loads(r.stdout)["id"] == snap
    err = r.stderr
    assert "hook post_snapshot 'exit 7' exited 7" in err, err
    assert f"snapshot {snap} is committed" in err, err
    # What to re-run: the failed command and the ones after it that did not run, not the snapshot.
    assert "`exit 7`" in err and "`echo later > later.out`" in err, err
    assert "`echo first > first.out`" not in err, err
    assert (repo.path / "first.out").exists() and not (repo.path / "later.out").exists()
