"""Our modules keep their .pyc under `inv`, the host's tasks.py still gets none, and -B is obeyed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INV = str(Path(sys.executable).with_name("inv"))

# Invoke's own switch, then a module imported inside and one outside our block.
PROBE = """
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from dr_tasks.internals import caching_own_bytecode
with caching_own_bytecode():
    import inside
import outside
assert sys.dont_write_bytecode is True
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _pycs(where: Path) -> set[str]:
    return {p.name.split(".")[0] for p in where.rglob("*.pyc")}


def _pyc_of(module: str, root: Path) -> str:
    """Where `module`'s .pyc goes, relative to the package, without the interpreter's tag."""
    path = module.removeprefix("dr_tasks.").replace(".", "/")
    if (root / "dr_tasks" / path / "__init__.py").exists():
        return f"{path}/__pycache__/__init__"
    folder, _, name = path.rpartition("/")
    return f"{folder}/__pycache__/{name}".lstrip("/")


def _probe(tmp_path: Path, *flags: str) -> set[str]:
    for name in ("inside", "outside"):
        (tmp_path / f"{name}.py").write_text("X = 1\n")
    subprocess.run([sys.executable, *flags, "-c", PROBE, str(tmp_path)], env=_env(), check=True, timeout=60)
    return _pycs(tmp_path)


def test_modules_imported_inside_the_block_write_their_pyc_when_only_invoke_said_no(tmp_path: Path):
    assert _probe(tmp_path) == {"inside"}


def test_an_interpreter_started_with_dash_b_writes_none(tmp_path: Path):
    assert _probe(tmp_path, "-B") == set()


def test_under_inv_our_modules_keep_their_pyc_and_the_host_repo_gets_none(tmp_path: Path):
    # A copy of the package, as an editable install has it: source only.
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "dr_tasks", pkg / "dr_tasks", ignore=shutil.ignore_patterns("__pycache__"))
    host = tmp_path / "host"
    (host / "state" / "log").mkdir(parents=True)
    (host / "state" / "log" / "snapshots.ndjson").touch()
    (host / "tasks.py").write_text("from invoke import Collection\nfrom dr_tasks import dr\n\nns = Collection(dr)\n")
    (host / "invoke.yaml").write_text("dr:\n  bucket: some-bucket\n")
    env = {**_env(), "PYTHONPATH": str(pkg), "PYTHONPROFILEIMPORTTIME": "1"}
    r = subprocess.run([INV, "dr.list", "--json"], cwd=host, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    written = {str(p.relative_to(pkg / "dr_tasks")).split(".")[0] for p in pkg.rglob("*.pyc")}
    # The collection (imported by tasks.py) and an operation (imported by the task's body).
    assert {"tasks/__pycache__/base", "tasks/__pycache__/__init__", "ops/__pycache__/catalog"} <= written
    # Every module of ours the run imported, but the two that load before the block can open:
    # the package itself (the host's tasks.py imports it) and `internals`, which holds the block.
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in r.stderr.splitlines()
        if line.startswith("import time:") and line.rsplit("|", 1)[1].strip().startswith("dr_tasks.")
    }
    expected = {_pyc_of(name, pkg) for name in imported if not name.startswith("dr_tasks.internals")}
    assert expected - written == set()
    assert not list(host.rglob("__pycache__"))
