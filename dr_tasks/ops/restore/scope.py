"""What a restore covers (a unit, a path, everything), and the holding dir's safety checks made before any request."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...config import DrConfig
from ...errors import DrError
from ...gitignore import holding_dir_ignored
from ...guard import Guard

# Names of holding dirs for the scopes that are not a unit.
ALL_STEM = "_all"
PATH_STEM = "_path-"


@dataclass(frozen=True)
class Scope:
    """What to restore: keys under `key_prefix`, named relative to the root-relative dir `base`."""

    kind: str
    unit: str | None
    path: str | None
    key_prefix: str
    base: str  # "" (root) or ends with "/"
    only: str | None  # a last path segment the names must start with (`--path a/b` without a slash)
    stem: str

    def name_for(self, cfg: DrConfig, key: str) -> str | None:
        """The key's name relative to `base`, or None when it is outside the scope."""
        if not key.startswith(self.key_prefix) or not cfg.is_live_key(key):
            return None
        rel = cfg.rel_for(key)
        name = rel[len(self.base) :]
        if self.only is not None and name != self.only and not name.startswith(self.only + "/"):
            return None
        if self.kind == "all" and (rel == cfg.restore_dir or rel.startswith(cfg.restore_dir + "/")):
            # The holding dir is never pushed; whatever is there is not state.
            return None
        return name

    def covers_local(self, name: str) -> bool:
        return self.only is None or name == self.only or name.startswith(self.only + "/")


def _check_segment_path(what: str, value: str) -> None:
    problem = Guard.key_problem(value)
    # The holding dir is named after it, and file systems cap a name at 255 bytes.
    if not problem and len(value.encode()) > 200:
        problem = f"longer than 200 bytes ({len(value.encode())})"
    if problem:
        shown = repr(value) if len(value) <= 80 else repr(value[:77] + "...")
        raise DrError(f"{what} {shown} is not usable: {problem}", f"give {what} relative to dr.root, e.g. state/notes/")


def resolve_scope(cfg: DrConfig, unit: str | None, path: str | None, all_: bool) -> Scope:
    given = [n for n, v in (("a unit", unit), ("--path", path), ("--all", all_)) if v]
    if len(given) != 1:
        raise DrError(
            "say what to restore: a unit, --path or --all (exactly one)"
            + (f"; got {' and '.join(given)}" if given else ""),
            "e.g. `inv dr.restore snappy-image 2026-04-15T18:00:00Z` or "
            "`inv dr.restore --path state/notes/ 2026-04-15T18:00:00Z`",
        )
    if unit:
        if "/" in unit or Guard.key_problem(unit):
            raise DrError(
                f"unit {unit!r} is not a unit name: a unit is one directory under {cfg.units or 'the root'}",
                "for a deeper path use --path, e.g. --path state/notes/",
            )
        _check_segment_path("unit", unit)
        return Scope("unit", unit, None, cfg.key_for(cfg.units + unit + "/"), cfg.units + unit + "/", None, unit)
    if path:
        p = path[2:] if path.startswith("./") else path
        if p in ("", ".", "./", "/"):
            raise DrError(f"--path {path!r} is the whole repo", "use --all for the whole substrate")
        _check_segment_path("--path", p[:-1] if p.endswith("/") else p)
        slug = re.sub(r"[^\w.-]+", "-", p.strip("/")).strip("-.") or "root"
        if p.endswith("/"):
            base, only = p, None
        else:
            parent, _, only = p.rpartition("/")
            base = parent + "/" if parent else ""
        scope = Scope("path", None, path, cfg.key_for(p), base, only, PATH_STEM + slug)
        if cfg.key_for(p).startswith(cfg.reserved_prefixes()):
            raise DrError(
                f"--path {path!r} is not live state (it is where snapshots or dr-tasks' own keys live)",
                "a snapshot is brought back with `inv dr.rollback`",
            )
        return scope
    return Scope("all", None, None, cfg.prefix, "", None, ALL_STEM)


# ---------------------------------------------------------------------- safety checks
def check_restore_dir(cfg: DrConfig, name: str) -> None:
    d = cfg.restore_dir
    if not Guard(cfg).restore_dir_denied():
        raise DrError(
            f"the holding dir {d}/ is not covered by dr.sync_deny (now {list(cfg.sync_deny)}), so a sync "
            "tool reading that list could push restored files",
            f'add "{d}/**" to dr.sync_deny in invoke.yaml, e.g. `sync_deny: ["{d}/**"]`',
        )
    if not holding_dir_ignored(cfg.root, d, name):
        raise DrError(
            f"the holding dir {d}/ is not ignored by git, so restored files could be committed",
            f"add this line to {cfg.root / '.gitignore'}:  /{d}/",
        )
    # Every directory from the root down to the restore dir must be real:
    # through a symlink, "inside the holding dir" could be anywhere.
    cur = cfg.root
    for part in d.split("/"):
        cur = cur / part
        if cur.is_symlink():
            raise DrError(
                f"refusing to restore: {cur} is a symlink, so the holding dir would be outside the repo",
                f"make {d}/ a real directory inside {cfg.root}",
            )
        if cur.exists() and not cur.is_dir():
            raise DrError(f"refusing to restore: {cur} is not a directory", f"move it away so {d}/ can be created")
