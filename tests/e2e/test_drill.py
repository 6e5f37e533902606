"""`inv dr.drill`: the README's main job, on the embedded server, never touching the repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import INV, local_tree

PROJECT = Path(__file__).resolve().parents[2]


def run_inv(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INVOKE_DR_"))}
    return subprocess.run([INV, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_drill_on_a_copy_of_this_project_passes_and_touches_nothing(tmp_path: Path):
    repo = tmp_path / "project"
    shutil.copytree(PROJECT / "state", repo / "state")
    shutil.copy(PROJECT / "tasks.py", repo / "tasks.py")
    shutil.copy(PROJECT / "invoke.yaml", repo / "invoke.yaml")
    before = local_tree(repo)
    r = run_inv(repo, "dr.drill")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "drill PASS" in r.stdout and "bytes lost (RPO): 0" in r.stdout
    for step in (
        "seed bucket",
        "snapshot",
        "damage live",
        "restore a unit",
        "rollback to the snapshot",
        "back up to a second region",
        "lose the primary bucket",
        "recover it from the backup",
        "verify",
    ):
        assert step in r.stdout
    after = {k: v for k, v in local_tree(repo).items() if "__pycache__" not in k}
    assert after == before


def test_drill_generates_sample_data_where_the_repo_has_none(tmp_path: Path):
    (tmp_path / "tasks.py").write_text("from invoke import Collection\nfrom dr_tasks import dr\nns = Collection(dr)\n")
    r = run_inv(tmp_path, "dr.drill", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["ok"] and result["bytes_lost"] == 0 and result["rto_seconds"] > 0
    assert all(step["ok"] for step in result["steps"]) and len(result["steps"]) == 12
    assert "generated sample data" in result["steps"][0]["detail"]
    assert not (tmp_path / "state").exists()


def test_drill_runs_from_the_dr_program(tmp_path: Path):
    dr = str(Path(sys.executable).with_name("dr"))
    r = subprocess.run([dr, "drill"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "drill PASS" in r.stdout
