"""The one guard every upload and every restored file goes through.

Uploads: a local path may be pushed only if it matches SYNC_ALLOW and does not
match SYNC_DENY (`<restore_dir>/**` is always denied, whatever the config
says). Paths are resolved first, so a symlink into the holding dir is caught.

Restores: a bucket key becomes a local path only if it stays inside the
holding dir: no `..`, no absolute path, no empty segment, no NUL, and no
symlinked parent on the way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pathspec

from .config import DrConfig
from .errors import DrError

_WINDOWS = os.name == "nt"


class GuardError(DrError):
    """A path the guard refuses."""


@dataclass(frozen=True)
class UploadPermit:
    """Proof that `path` passed the guard; `S3.upload_file` accepts nothing else."""

    path: Path
    rel: str


def _spec(patterns: tuple[str, ...] | list[str]) -> pathspec.PathSpec:
    return pathspec.GitIgnoreSpec.from_lines(list(patterns))


class Guard:
    def __init__(self, cfg: DrConfig) -> None:
        self.root = cfg.root.resolve()
        self.restore_dir = cfg.restore_dir
        deny = [*cfg.sync_deny, f"{cfg.restore_dir}/**", f"/{cfg.restore_dir}"]
        self.allow = _spec(cfg.sync_allow)
        self.deny = _spec(deny)
        self.deny_patterns = tuple(cfg.sync_deny)

    # ------------------------------------------------------------------ uploads
    def _rel(self, path: Path) -> str | None:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return None

    def check_upload(self, path: Path | str) -> UploadPermit:
        """Permit an upload of `path` (absolute, or relative to root), or raise GuardError."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        literal = self._rel(Path(os.path.abspath(p)))
        resolved_path = p.resolve()
        resolved = self._rel(resolved_path)
        if literal is None or resolved is None:
            raise GuardError(
                f"refusing to upload {path}: it resolves outside the repo root {self.root}",
                "only files under dr.root can be pushed",
            )
        for rel in {literal, resolved}:
            if self.deny.match_file(rel):
                raise GuardError(
                    f"refusing to upload {literal}"
                    + (f" (resolves to {resolved})" if resolved != literal else "")
                    + ": it matches SYNC_DENY",
                    f"nothing under {self.restore_dir}/ or matching dr.sync_deny is ever pushed; "
                    "move the file into live state by hand if you mean to",
                )
        if not self.allow.match_file(literal) or not self.allow.match_file(resolved):
            raise GuardError(
                f"refusing to upload {literal}: it is outside SYNC_ALLOW",
                "add a pattern for it to dr.sync_allow if it should be mirrored",
            )
        return UploadPermit(resolved_path, literal)

    def is_denied(self, rel: str) -> bool:
        return bool(self.deny.match_file(rel))

    def restore_dir_denied(self) -> bool:
        """Whether the configured sync_deny itself covers the holding dir (the guard adds it anyway)."""
        spec = _spec(self.deny_patterns)
        return bool(spec.match_file(f"{self.restore_dir}/x")) and bool(spec.match_file(f"{self.restore_dir}/a/b"))

    # ------------------------------------------------------------------ restores
    @staticmethod
    def key_problem(rel_key: str) -> str | None:
        """Why a (prefix-relative) key cannot become a relative local path, or None."""
        if not rel_key:
            return "empty key"
        if "\x00" in rel_key:
            return "contains NUL"
        if rel_key.startswith("/") or (_WINDOWS and len(rel_key) > 1 and rel_key[1] == ":"):
            # "c:x" names a drive on Windows only; elsewhere it is an ordinary file name.
            return "absolute path"
        if "\\" in rel_key:
            return "contains a backslash"
        parts = rel_key.split("/")
        if any(part == "" for part in parts):
            return "empty path segment"
        if any(part in (".", "..") for part in parts):
            return "'.' or '..' segment"
        return None

    @staticmethod
    def safe_join(base: Path, rel_key: str, verified: set[Path] | None = None) -> Path:
        """`base / rel_key`, refusing anything that would land outside `base`.

        `verified` is a caller's cache of directories under `base` already seen
        not to be symlinks: a restore of many files checks each directory once
        instead of once per file (and skips the final resolve, since a path of
        plain segments through non-symlink directories cannot leave `base`).
        """
        problem = Guard.key_problem(rel_key)
        if problem:
            raise GuardError(f"refusing key {rel_key!r}: {problem}", "it would resolve outside the holding dir")
        # key_problem refused empty, "." and ".." segments: splitting is exact.
        parts = rel_key.split("/")
        target = base.joinpath(*parts)
        if verified is not None and target.parent in verified:
            # Its parent was checked, and so were all of the parent's parents.
            return target
        # A parent that is (or later becomes) a symlink could point anywhere.
        cur = base
        for part in parts[:-1]:
            cur = cur / part
            if verified is not None and cur in verified:
                continue
            if cur.is_symlink():
                raise GuardError(f"refusing key {rel_key!r}: parent {cur} is a symlink", "remove the symlink")
            if verified is not None:
                verified.add(cur)
        if verified is not None:
            return target
        try:
            target.resolve().relative_to(base.resolve())
        except ValueError:
            raise GuardError(
                f"refusing key {rel_key!r}: resolves outside {base}", "it would escape the holding dir"
            ) from None
        return target
