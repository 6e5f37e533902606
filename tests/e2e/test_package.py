"""The packaging test: the wheel built from this repo, installed in a fresh venv, is a working library.

What a user gets from `pip install dr-tasks` is the wheel, not this source tree:
its metadata (license, every imported package declared, `py.typed`) and a
`dr` program that runs with nothing from the repo on sys.path. The venv is
made from nothing and filled from the package index (and /opt/wheels, pip's
find-links here), as a user's would be; every command runs from an empty temp
dir. Slow (an install from the index), hence its own marker: `-m 'not package'`
skips it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = [pytest.mark.package, pytest.mark.timeout(900)]

PROJECT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 600

# Run inside the fresh venv with `python -I` (no cwd, no PYTHONPATH on sys.path):
# where dr_tasks was imported from, and every package its modules import, with
# the distribution that installed it there.
IMPORTS_PROBE = r"""
import ast, json, sys
from importlib.metadata import packages_distributions
from pathlib import Path
import dr_tasks

pkg = Path(dr_tasks.__file__).parent
dists = packages_distributions()
found = {}
for path in sorted(pkg.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("__future__", "dr_tasks"):
                continue
            entry = found.setdefault(top, {"dists": dists.get(top, []), "files": []})
            entry["files"].append(path.relative_to(pkg).as_posix())
print(json.dumps({"package_dir": str(pkg), "py_typed": (pkg / "py.typed").is_file(), "imports": found}))
"""


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _clean_env() -> dict[str, str]:
    """The caller's environment without anything that would put this repo or the test venv in reach."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AWS_", "INVOKE_DR_"))}


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args} exited {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _build_wheel(tmp: Path) -> Path:
    # From a copy: setuptools builds in the source tree (build/, *.egg-info), where a
    # stale build/lib would slip into the wheel and a parallel run would race.
    src = tmp / "src"
    junk = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "_restore", "out")
    shutil.copytree(PROJECT, src, ignore=shutil.ignore_patterns(*junk))
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], tmp, PIP_TIMEOUT)
    (wheel,) = dist.glob("dr_tasks-*.whl")
    return wheel


def _metadata(wheel: Path) -> tuple[list[str], str]:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        return names, z.read(meta).decode()


def _requirements(metadata: str) -> tuple[set[str], dict[str, set[str]]]:
    """Requires-Dist split into the base set and each extra's own."""
    base: set[str] = set()
    extras: dict[str, set[str]] = {}
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", str(req.marker or ""))
        if extra:
            extras.setdefault(extra.group(1), set()).add(_canon(req.name))
        else:
            base.add(_canon(req.name))
    return base, extras


def test_the_built_wheel_installs_in_a_fresh_venv_and_runs_dr_and_the_drill(tmp_path: Path):
    wheel = _build_wheel(tmp_path)
    names, metadata = _metadata(wheel)

    # What a typed caller and a packager read from the wheel alone.
    assert "dr_tasks/py.typed" in names, "dr_tasks/py.typed is not in the wheel (type checkers ignore our hints)"
    assert re.search(r"^License-Expression: MIT$", metadata, re.M), metadata[:2000]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert re.search(r"^Classifier: ", metadata, re.M), "no classifiers"
    base, extras = _requirements(metadata)

    run_dir = tmp_path / "elsewhere"  # nothing here: no tasks.py, no invoke.yaml, no dr_tasks/
    run_dir.mkdir()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], run_dir)
    py, dr = str(venv / "bin" / "python"), str(venv / "bin" / "dr")

    # The bare install: the `dr` program needs nothing beyond the base dependencies.
    # --no-compile: byte-compiling botocore and moto would be most of the install's time.
    _run([py, "-m", "pip", "install", "-q", "--no-compile", str(wheel)], run_dir, PIP_TIMEOUT)
    listing = _run([dr, "--list"], run_dir)
    for task in ("snapshot", "restore", "rollback", "backup", "recover", "drill", "verify", "prune"):
        assert task in listing.stdout, listing.stdout

    # The extra the README's first command picks: the drill on its embedded S3 server.
    embedded_req = f"dr-tasks[embedded] @ {wheel.as_uri()}"
    _run([py, "-m", "pip", "install", "-q", "--no-compile", embedded_req], run_dir, PIP_TIMEOUT)
    drill = _run([dr, "drill"], run_dir)
    assert "drill PASS" in drill.stdout, drill.stdout
    assert "bytes lost (RPO): 0" in drill.stdout

    probe = json.loads(_run([py, "-I", "-c", IMPORTS_PROBE], run_dir).stdout)
    assert Path(probe["package_dir"]).is_relative_to(venv), probe["package_dir"]  # not the repo's copy
    assert probe["py_typed"]
    embedded = extras.get("embedded", set())
    undeclared: dict[str, list[str]] = {}
    for module, found in probe["imports"].items():
        owners = {_canon(d) for d in found["dists"]}
        if not owners:
            undeclared[module] = ["installed by nothing", *found["files"]]
        elif owners & base:
            continue
        elif owners & embedded:
            # Only the embedded server may need the extra: everything else runs on the bare install.
            assert set(found["files"]) == {"embedded.py"}, (module, found["files"])
        else:
            undeclared[module] = [f"from {sorted(owners)}, not declared", *found["files"]]
    assert not undeclared, f"imported by dr_tasks but not in Requires-Dist: {undeclared}"
