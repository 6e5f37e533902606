"""README's "Install into your repo": its `tasks.py` snippets, run as written in a scratch host repo.

The snippets are read from README.md, so the README and this test cannot drift:
the mounted `tasks.py` lists the host's task and every `dr.*` task and runs
the drill and a snapshot against the real servers; the flat `tasks.py` hides
every `dr.*` task, as the README warns; its fix shows them again.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import INV, HostRepo, Server, local_tree

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Install into your repo"
DR_TASKS = ("dr.snapshot", "dr.restore", "dr.rollback", "dr.backup", "dr.recover", "dr.drill", "dr.verify")


def _snippets() -> list[str]:
    """The section's python blocks, in order: the mounted tasks.py, the flat one, the flat one's fix."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"^```python\n(.*?)^```$", text[start : end if end > 0 else None], re.S | re.M)
    assert len(blocks) == 3, blocks
    return blocks


def _inv(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INVOKE_DR_"))}
    full.update(env or {})
    return subprocess.run([INV, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def _host(tmp_path: Path, tasks_py: str) -> Path:
    """A host repo with nothing but its tasks.py and a state/ to drill on."""
    repo = tmp_path / "host"
    (repo / "state" / "notes").mkdir(parents=True)
    (repo / "state" / "notes" / "todo.txt").write_text("ship it\n")
    (repo / "tasks.py").write_text(tasks_py)
    return repo


def _listed(r: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ") and line.split()}


def test_the_readme_tasks_py_lists_the_host_task_beside_dr_and_runs_the_drill(tmp_path: Path):
    repo = _host(tmp_path, _snippets()[0])
    listing = _inv(repo, "--list")
    assert listing.returncode == 0, listing.stderr
    assert {"build", *DR_TASKS} <= _listed(listing), listing.stdout

    built = _inv(repo, "build")
    assert built.returncode == 0 and "built" in built.stdout, built.stderr

    before = local_tree(repo)
    drill = _inv(repo, "dr.drill")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "drill PASS" in drill.stdout and "copied" in drill.stdout  # drilled on a copy of the host's state/
    assert {k: v for k, v in local_tree(repo).items() if "__pycache__" not in k} == before


def test_the_readme_tasks_py_snapshots_the_host_repo_against_its_bucket(
    server: Server, bucket: str, make_repo: Callable[..., HostRepo]
):
    repo = make_repo(server, bucket)
    (repo.path / "tasks.py").write_text(_snippets()[0])  # the README's, in place of the fixture's
    repo.seed()
    r = repo.run("dr.snapshot", "--label=wired")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [row["label"] for row in repo.index_rows()] == ["wired"]
    assert repo.run("build").returncode == 0


def test_a_flat_tasks_py_hides_dr_and_the_readme_fix_shows_it(tmp_path: Path):
    _, flat, fix = _snippets()
    repo = _host(tmp_path, flat)
    listing = _inv(repo, "--list")
    assert listing.returncode == 0, listing.stderr
    assert _listed(listing) == {"build"}, listing.stdout
    hidden = _inv(repo, "dr.snapshot")
    assert hidden.returncode != 0 and "No idea what 'dr.snapshot' is!" in hidden.stderr, hidden.stderr

    (repo / "tasks.py").write_text(flat + "\n" + fix)
    listing = _inv(repo, "--list")
    assert listing.returncode == 0, listing.stderr
    assert {"build", *DR_TASKS} <= _listed(listing), listing.stdout
    drill = _inv(repo, "dr.drill", "--json")
    assert drill.returncode == 0, drill.stdout + drill.stderr
