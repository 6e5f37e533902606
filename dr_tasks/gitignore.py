"""Whether git would ignore a path: the one rule `dr.restore` and `dr.verify` read .gitignore by.

The repo's own files only: `.git/info/exclude`, then every `.gitignore` from the
root down to the file's directory (each applied relative to its own
directory); the last one with an opinion wins, as in git. A user's global
excludes are not read: they protect one clone, not the repo.
"""

from __future__ import annotations

from pathlib import Path

import pathspec


def gitignore_covers(root: Path, rel: str) -> bool:
    """Whether git would ignore the root-relative file path `rel`, reading only the repo's own files."""
    parts = rel.split("/")
    sources: list[tuple[str, Path]] = [("", root / ".git" / "info" / "exclude")]
    for i in range(len(parts)):
        d = "/".join(parts[:i])
        sources.append((d + "/" if d else "", root / d / ".gitignore" if d else root / ".gitignore"))
    verdict: bool | None = None
    for base, f in sources:
        if not f.is_file():
            continue
        lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
        include = pathspec.GitIgnoreSpec.from_lines(lines).check_file(rel[len(base) :]).include
        if include is not None:
            verdict = include
    return bool(verdict)


def holding_dir_ignored(root: Path, restore_dir: str, name: str) -> bool:
    """Whether git ignores a restore's holding dir `<restore_dir>/<name>/` and its receipt `<name>.json`."""
    return gitignore_covers(root, f"{restore_dir}/{name}/x") and gitignore_covers(root, f"{restore_dir}/{name}.json")
