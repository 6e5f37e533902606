"""What a restore returns and what its receipt records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .versions import OrderAmbiguity

SYMLINK_NOTE = "live is a symlink; not followed"


@dataclass(frozen=True)
class RestoredFile:
    name: str  # relative to the holding dir (and to the live dir it is diffed against)
    key: str
    version_id: str | None
    size: int
    etag: str
    last_modified: str
    sha256: str


@dataclass(frozen=True)
class RefusedKey:
    key: str
    reason: str


@dataclass
class FileDiff:
    """How one modified file differs: lines are unified diff (text) or `~ + -` changes (structured)."""

    name: str
    kind: str  # "text", "structured" or "binary"
    lines: list[str] = field(default_factory=list)
    # Lines left out because of the cap (`full` shows them).
    truncated: int = 0
    format: str | None = None  # json / yaml / ndjson for structured diffs
    live: dict[str, Any] | None = None  # {"size", "sha256"}
    restored: dict[str, Any] | None = None
    note: str | None = None


@dataclass
class DiffResult:
    """What changed in live since TS, said from the operator's side.

    `deleted_since_ts`: at TS, not live (the holding dir has it);
    `created_since_ts`: live, absent at TS (the holding dir does not have it);
    `changed_since_ts`: both, with other bytes (the holding dir has it as at TS).
    """

    live_dir: str
    deleted_since_ts: list[str] = field(default_factory=list)
    created_since_ts: list[str] = field(default_factory=list)
    changed_since_ts: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    files: list[FileDiff] = field(default_factory=list)
    # Live files the guard would never push (outside SYNC_ALLOW or in SYNC_DENY): not compared.
    ignored_live: list[str] = field(default_factory=list)
    # Live symlinks (files or directories; "" is the live dir itself): shown as
    # links, never followed, so a link out of the repo never puts what it points
    # at into the report.
    live_symlinks: list[str] = field(default_factory=list)

    # The names of the first report, which read from the restore's side
    # ("added" meant deleted since TS): kept for the Python API and `--json`.
    @property
    def added(self) -> list[str]:
        return self.deleted_since_ts

    @property
    def removed(self) -> list[str]:
        return self.created_since_ts

    @property
    def modified(self) -> list[str]:
        return self.changed_since_ts

    def counts(self) -> dict[str, int]:
        return {
            "deleted_since_ts": len(self.deleted_since_ts),
            "created_since_ts": len(self.created_since_ts),
            "changed_since_ts": len(self.changed_since_ts),
            "unchanged": len(self.unchanged),
            **{old: len(names) for old, names in self.legacy().items()},
        }

    def legacy(self) -> dict[str, list[str]]:
        """The lists under their first names (`added`, `removed`, `modified`), for scripts written against them."""
        return {"added": self.added, "removed": self.removed, "modified": self.modified}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), **self.legacy()}


@dataclass
class RestoreResult:
    scope: str  # "unit", "path" or "all"
    unit: str | None
    path: str | None
    ts: str
    ts_input: str
    future: bool
    bucket: str
    key_prefix: str
    versioned: bool
    holding_dir: str  # root-relative, with a trailing "/"
    holding_path: str  # absolute
    receipt: str  # root-relative
    restored: list[RestoredFile]
    deleted_at_ts: list[str]
    born_after_ts: list[str]
    directory_markers: list[str]
    refused: list[RefusedKey]
    diff: DiffResult
    replaced_existing: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Keys whose version at TS the server's order decided against their timestamps (see `versions_at`).
    ambiguous: list[OrderAmbiguity] = field(default_factory=list)
    # [first key, later key] pairs whose names are one file where case or
    # Unicode normalization is ignored (macOS, Windows): reported wherever
    # they are restored; on such a file system the later key is refused.
    name_collisions: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.restored)

    def counts(self) -> dict[str, int]:
        return {
            "restored": len(self.restored),
            "bytes": self.bytes,
            "deleted_at_ts": len(self.deleted_at_ts),
            "born_after_ts": len(self.born_after_ts),
            "refused": len(self.refused),
            **self.diff.counts(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "diff": self.diff.to_dict(), "ok": self.ok, "counts": self.counts()}

    def receipt_dict(self, created: str) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "restore",
            "created": created,
            "scope": self.scope,
            "unit": self.unit,
            "path": self.path,
            "ts": self.ts,
            "ts_input": self.ts_input,
            "future": self.future,
            "bucket": self.bucket,
            "key_prefix": self.key_prefix,
            "versioned": self.versioned,
            "holding_dir": self.holding_dir,
            "live_dir": self.diff.live_dir,
            "counts": self.counts(),
            "versions": [asdict(f) for f in self.restored],
            "deleted_at_ts": self.deleted_at_ts,
            "born_after_ts": self.born_after_ts,
            "refused": [asdict(r) for r in self.refused],
            "ambiguous": [asdict(a) for a in self.ambiguous],
            "name_collisions": self.name_collisions,
        }
