"""`dr.restore`: a unit (or a path, or everything) as it was at an instant, into the holding dir.

Nothing live changes: the bucket gets only ListObjectVersions, GetBucketVersioning
and GetObject requests, the live files are only read (for the diff), and no
index row is written. The operator reviews the holding dir and moves files by hand.

Order of work:
1. parse TS and refuse, before any request, what cannot end well: a holding
   dir that git or SYNC_DENY would not ignore, one that exists already (unless
   `force`), a restore dir reached through a symlink;
2. stream the version listing under the scope's prefix and decide key by key
   which entry was current at TS (see `versions_at`), on a thread of its own
   (see `_Decisions`), while
3. those exact version ids download in parallel into a staging dir next to the
   holding dir, each through a short temp file that is checked (size, MD5 ETag) and
   renamed into place, with mtime = the version's LastModified;
4. diff the staged tree against the live local files;
5. rename the staging dir to the holding dir (with `force`, swap out the old
   one), then write the receipt `<restore_dir>/<name>.json` beside it.

Keys that would land outside the holding dir (`..`, absolute, empty segment,
NUL, backslash, a file that is also a directory), and keys whose name the
local file system refuses, are never written: they are
listed in `refused`, every other key is still restored, and `ok` is False (the
task then exits 1).
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import itertools
import json
import os
import queue
import re
import reprlib
import shutil
import threading
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pathspec

from ..config import DrConfig
from ..crt import BulkS3, GetJob, WriteFailed, bulk_for
from ..errors import DrError
from ..guard import Guard, GuardError
from ..lease import pid_alive
from ..parallel import Failure, run_parallel
from ..progress import NULL_PROGRESS, Progress
from ..s3 import S3, ObjectVersion
from ..timeparse import compact_utc, iso_utc, parse_ts

# Diff output per modified file, unless `full`.
DIFF_LINE_CAP = 60
# Files bigger than this get the binary summary (size, SHA-256) instead of a content diff.
DIFF_MAX_BYTES = 4 * 1024 * 1024
STRUCTURED = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".ndjson": "ndjson", ".jsonl": "ndjson"}
# Names of holding dirs for the scopes that are not a unit.
ALL_STEM = "_all"
PATH_STEM = "_path-"
UNVERSIONED_WARNING = (
    "bucket versioning is not enabled: only each key's current object exists, so keys written after TS "
    "cannot be restored as they were; run `inv dr.versioning --enable`"
)


# ---------------------------------------------------------------------- results
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


SYMLINK_NOTE = "live is a symlink; not followed"


@dataclass
class DiffResult:
    """Live -> restored: `added` exist only in the restore, `removed` only live."""

    live_dir: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    files: list[FileDiff] = field(default_factory=list)
    # Live files the guard would never push (outside SYNC_ALLOW or in SYNC_DENY): not compared.
    ignored_live: list[str] = field(default_factory=list)
    # Live symlinks (files or directories; "" is the live dir itself): shown as
    # links, never followed, so a link out of the repo never puts what it points
    # at into the report.
    live_symlinks: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "modified": len(self.modified),
            "unchanged": len(self.unchanged),
        }


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
        return {**asdict(self), "ok": self.ok, "counts": self.counts()}

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


# ---------------------------------------------------------------------- version selection
@dataclass(frozen=True)
class OrderAmbiguity:
    """A key whose version at TS the server's order decided where its timestamps say otherwise, or tie.

    `chosen` is what was restored (the first entry in server order with
    LastModified <= TS); `others` are the entries listed after it (so older,
    by the server's order) whose LastModified is later than the chosen one's,
    or equal to it with the other kind (a write and a delete at one instant).
    Each is "<version id> <LastModified>" with " (delete marker)" for a marker.
    """

    key: str
    reason: str
    chosen: str
    others: list[str]

    def describe(self) -> str:
        shown = ", ".join(self.others[:AMBIGUOUS_SHOWN]) + (" ..." if len(self.others) > AMBIGUOUS_SHOWN else "")
        return f"{self.key}: {self.reason}; chose {self.chosen} (the server's order) over {shown}"


# Entries of one key an ambiguity names, at most; keys named as warnings (all are in the receipt).
AMBIGUOUS_SHOWN = 3
AMBIGUOUS_WARNED = 10


def _entry_name(e: ObjectVersion) -> str:
    return f"{e.version_id or 'null'} {iso_utc(e.last_modified)}" + (" (delete marker)" if e.is_delete_marker else "")


@dataclass(frozen=True)
class KeyAtTs:
    """One key's state at TS: `entry` is the version then current, None when absent."""

    key: str
    entry: ObjectVersion | None
    state: str  # "present", "deleted" (a delete marker was current) or "not-yet" (born after TS)
    oldest: datetime  # the key's oldest LastModified seen (for "pick a later time" hints)
    ambiguity: OrderAmbiguity | None = None


def versions_at(entries: Iterable[ObjectVersion], ts: datetime) -> Iterator[KeyAtTs]:
    """Decide, key by key as the listing streams, which entry was current at `ts`.

    The contract: the first entry in the server's newest-first order with
    LastModified <= TS (exactly at TS counts); a delete marker there means
    absent; no such entry means the key was born after TS. The order is the
    listing's (`S3.iter_versions` keeps the server's, see `s3._merge_page`),
    never re-sorted by timestamp. Where the timestamps disagree with that
    order after the chosen entry (a later LastModified listed as older), or
    a write and a delete share the chosen entry's LastModified, the choice is
    the order's and `ambiguity` says so. Memory is one key's state (and at
    most AMBIGUOUS_SHOWN of its entries), whatever the number of versions.
    """
    key: str | None = None
    best: ObjectVersion | None = None
    oldest: datetime | None = None
    later: list[ObjectVersion] = []  # listed after `best` with a later LastModified
    later_count = 0
    tied: list[ObjectVersion] = []  # listed after `best`, same LastModified, the other kind
    tied_count = 0

    def decide() -> KeyAtTs:
        assert key is not None and oldest is not None
        if best is None:
            return KeyAtTs(key, None, "not-yet", oldest)
        ambiguity = None
        if later_count or tied_count:
            reason = (
                f"{later_count} {'entry' if later_count == 1 else 'entries'} listed as older "
                f"{'has' if later_count == 1 else 'have'} a later LastModified"
                if later_count
                else "a write and a delete share its LastModified"
            )
            others = [_entry_name(e) for e in (later or tied)]
            if len(others) < later_count + tied_count:
                others.append(f"and {later_count + tied_count - len(others)} more")
            ambiguity = OrderAmbiguity(key, reason, _entry_name(best), others)
        if best.is_delete_marker:
            return KeyAtTs(key, None, "deleted", oldest, ambiguity)
        return KeyAtTs(key, best, "present", oldest, ambiguity)

    for e in entries:
        if e.key != key:
            if key is not None:
                if e.key < key:
                    # A key decided already could come back with other
                    # versions; never guess, the listing contract is broken.
                    raise DrError(
                        f"the server listed key {e.key!r} after {key!r}: versions are not in key order",
                        "this S3 server does not list versions as S3 does; restore cannot pick versions safely",
                    )
                yield decide()
            key, best, oldest = e.key, None, e.last_modified
            later, tied, later_count, tied_count = [], [], 0, 0
        oldest = min(oldest, e.last_modified) if oldest else e.last_modified
        if best is None:
            if e.last_modified <= ts:
                best = e
        elif e.last_modified > best.last_modified:
            later_count += 1
            if len(later) < AMBIGUOUS_SHOWN:
                later.append(e)
        elif e.last_modified == best.last_modified and e.is_delete_marker != best.is_delete_marker:
            tied_count += 1
            if len(tied) < AMBIGUOUS_SHOWN:
                tied.append(e)
    if key is not None:
        yield decide()


# ---------------------------------------------------------------------- scope
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
def gitignore_covers(root: Path, rel: str) -> bool:
    """Whether git would ignore the root-relative file path `rel`, reading only the repo's own files.

    `.git/info/exclude`, then every `.gitignore` from the root down to the
    file's directory (each applied relative to its own directory); the last
    one with an opinion wins, as in git. A user's global excludes are not
    read: they protect one clone, not the repo.
    """
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


def _check_restore_dir(cfg: DrConfig, name: str) -> None:
    d = cfg.restore_dir
    if not Guard(cfg).restore_dir_denied():
        raise DrError(
            f"the holding dir {d}/ is not covered by dr.sync_deny (now {list(cfg.sync_deny)}), so a sync "
            "tool reading that list could push restored files",
            f'add "{d}/**" to dr.sync_deny in invoke.yaml, e.g. `sync_deny: ["{d}/**"]`',
        )
    if not (gitignore_covers(cfg.root, f"{d}/{name}/x") and gitignore_covers(cfg.root, f"{d}/{name}.json")):
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


# ---------------------------------------------------------------------- diff
# A live file swapped for a symlink after the walk is still not followed.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_live(path: Path) -> Any:
    return os.fdopen(os.open(path, os.O_RDONLY | _NOFOLLOW), "rb")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with _open_live(path) as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()


def _live_files(cfg: DrConfig, scope: Scope, guard: Guard) -> tuple[dict[str, Path], list[str], dict[str, str]]:
    """Live regular files under the scope's base dir, by name; those the guard would never push; symlinks.

    Nothing is followed: a symlink (to a file or a directory, or the base dir
    itself, or a directory on the way to it) is returned with its target text,
    so the diff never reads outside the repo root.
    """
    found: dict[str, Path] = {}
    ignored: list[str] = []
    links: dict[str, str] = {}
    base_dir = cfg.root
    for part in scope.base.rstrip("/").split("/") if scope.base else []:
        base_dir = base_dir / part
        if base_dir.is_symlink():
            links[""] = os.readlink(base_dir)
            return found, ignored, links
    if not base_dir.is_dir():
        return found, ignored, links
    for dirpath, dirnames, filenames in os.walk(base_dir):
        here = Path(dirpath)
        rel_dir = here.relative_to(cfg.root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        linked = [dn for dn in dirnames if (here / dn).is_symlink()]
        dirnames[:] = sorted(
            dn for dn in dirnames if dn != ".git" and (rel_dir + dn) != cfg.restore_dir and dn not in linked
        )
        for fn in [*filenames, *linked]:
            p = here / fn
            rel = rel_dir + fn
            name = rel[len(scope.base) :]
            is_link = p.is_symlink()
            if not scope.covers_local(name) or not (is_link or p.is_file()):
                continue
            if guard.is_denied(rel) or not guard.allow.match_file(rel):
                ignored.append(name)
                continue
            if is_link:
                links[name] = os.readlink(p)
            else:
                found[name] = p
    return found, sorted(ignored), links


def _text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:  # Invoke carries its own copy; it reads invoke.yaml with it
        from invoke.vendor import yaml  # type: ignore[no-redef]
    docs = list(yaml.safe_load_all(text))
    return docs[0] if len(docs) == 1 else docs


def _parse(fmt: str, text: str) -> Any:
    if fmt == "json":
        return json.loads(text)
    if fmt == "ndjson":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return _load_yaml(text)


def _short(value: Any, limit: int = 100) -> str:
    # Encoded lazily and cut at the limit: a YAML alias can stand for a tree of
    # a billion leaves that only exists once something walks all of it.
    text, size = [], 0
    try:
        for chunk in _ENCODER.iterencode(value):
            text.append(chunk)
            size += len(chunk)
            if size > limit:
                break
        s = "".join(text)
    except (TypeError, ValueError, RecursionError):
        s = reprlib.repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True)
# Nodes a parsed document may have, aliases expanded, for a structural diff;
# past it the text diff is shown (it is bounded by the file's size).
STRUCTURE_MAX_NODES = 100_000


def _too_big(doc: Any, cap: int = STRUCTURE_MAX_NODES) -> bool:
    """Whether walking `doc` would visit more than `cap` nodes (a recursive alias never ends: it counts too)."""
    todo, seen = [doc], 0
    while todo:
        node = todo.pop()
        seen += 1
        if seen > cap:
            return True
        if isinstance(node, dict):
            todo.extend(node.keys())
            todo.extend(node.values())
        elif isinstance(node, (list, tuple)):
            todo.extend(node)
    return False


def structural_changes(live: Any, restored: Any) -> list[str]:
    """What changed between two parsed documents, by path: `~` changed, `+` only at TS, `-` only live."""
    from deepdiff import DeepDiff

    dd = DeepDiff(live, restored, view="tree", verbose_level=2)
    out: list[tuple[str, str]] = []
    for report, levels in dd.items():
        for level in levels:
            path = level.path()
            if report.endswith("_added"):
                out.append((path, f"+ {path}: {_short(level.t2)}"))
            elif report.endswith("_removed"):
                out.append((path, f"- {path}: {_short(level.t1)}"))
            else:
                out.append((path, f"~ {path}: {_short(level.t1)} -> {_short(level.t2)}"))
    return [line for _, line in sorted(out)]


def _cap(lines: list[str], full: bool) -> tuple[list[str], int]:
    if full or len(lines) <= DIFF_LINE_CAP:
        return lines, 0
    return lines[:DIFF_LINE_CAP], len(lines) - DIFF_LINE_CAP


def diff_file(name: str, live: Path, restored: Path, ts_label: str, full: bool) -> FileDiff:
    lsize, rsize = live.lstat().st_size, restored.stat().st_size
    summary_live = {"size": lsize, "sha256": _sha256_file(live)}
    summary_restored = {"size": rsize, "sha256": _sha256_file(restored)}
    if max(lsize, rsize) > DIFF_MAX_BYTES:
        return FileDiff(
            name, "binary", live=summary_live, restored=summary_restored, note="too large for a content diff"
        )
    with _open_live(live) as fh:
        ldata = fh.read()
    rdata = restored.read_bytes()
    ltext, rtext = _text(ldata), _text(rdata)
    if ltext is None or rtext is None:
        return FileDiff(name, "binary", live=summary_live, restored=summary_restored)
    note = None
    fmt = STRUCTURED.get(Path(name).suffix.lower())
    if fmt:
        try:
            lobj = _parse(fmt, ltext)
        except Exception as err:  # any parser error means "not valid <fmt>": fall back to text
            lobj, note = None, f"live file is not valid {fmt.upper()} ({type(err).__name__}); text diff"
        try:
            robj = _parse(fmt, rtext) if note is None else None
        except Exception as err:
            note = f"restored file is not valid {fmt.upper()} ({type(err).__name__}); text diff"
        if note is None and (_too_big(lobj) or _too_big(robj)):
            note = f"more than {STRUCTURE_MAX_NODES} values once YAML aliases are expanded; text diff"
        if note is None:
            changes = structural_changes(lobj, robj) or ["(same data, different formatting)"]
            shown, cut = _cap(changes, full)
            return FileDiff(name, "structured", shown, cut, fmt, summary_live, summary_restored)
    lines = list(
        difflib.unified_diff(ltext.splitlines(), rtext.splitlines(), f"live/{name}", f"{ts_label}/{name}", lineterm="")
    )
    if not lines:
        # splitlines() hides these; the bytes still differ.
        lines = ["(differs only in line endings or the final newline)"]
    shown, cut = _cap(lines, full)
    return FileDiff(name, "text", shown, cut, None, summary_live, summary_restored, note)


def compute_diff(
    cfg: DrConfig, scope: Scope, staged: Path, restored: list[RestoredFile], ts_label: str, full: bool
) -> DiffResult:
    live, ignored, links = _live_files(cfg, scope, Guard(cfg))
    result = DiffResult(live_dir=scope.base or "./", ignored_live=ignored, live_symlinks=sorted(links))
    by_name = {f.name: f for f in restored}
    for name in sorted(set(by_name) | set(live)):
        if name in links:
            r = by_name[name]
            result.modified.append(name)
            result.files.append(
                FileDiff(
                    name,
                    "symlink",
                    live={"symlink": links[name]},
                    restored={"size": r.size, "sha256": r.sha256},
                    note=SYMLINK_NOTE,
                )
            )
        elif name not in live:
            result.added.append(name)
        elif name not in by_name:
            result.removed.append(name)
        else:
            path = staged.joinpath(*name.split("/"))
            if live[name].stat().st_size == by_name[name].size and _sha256_file(live[name]) == by_name[name].sha256:
                result.unchanged.append(name)
            else:
                result.modified.append(name)
                result.files.append(diff_file(name, live[name], path, ts_label, full))
    return result


# ---------------------------------------------------------------------- names one file system folds
def fold_name(name: str) -> str:
    """`name` as a case- and normalization-insensitive file system compares it (APFS, HFS+, NTFS)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def folds_names(directory: Path) -> bool:
    """Whether the file system holding `directory` takes two names that differ in case or NFC/NFD for one file.

    Probed, not guessed from the platform: Linux can mount a case-folding
    ext4 or a vfat stick, and macOS can format APFS case-sensitive. A probe
    that cannot be made counts as folding: then twins are refused, never
    written over each other.
    """
    stem = f".dr-probe-{uuid.uuid4().hex[:8]}-"
    made = directory / f"{stem}A\u00e9"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        made.touch(exist_ok=False)
    except OSError:
        return True
    try:
        return os.path.lexists(directory / f"{stem}a\u00e9") or os.path.lexists(directory / f"{stem}Ae\u0301")
    finally:
        made.unlink(missing_ok=True)


# ---------------------------------------------------------------------- the operation
class _Decisions:
    """Which version of each key in scope to write, decided as the listing streams in.

    `stream` lists on a thread of its own and yields each (name, version) to
    write as soon as it is safe to, so the first downloads start after the
    first page, not after the last one, and the listing's round trips overlap
    the downloads (a tenth of a 2,000-key restore on RGW). A name is held back
    until the listing has passed every name that could be below it (listings
    are in key order, and every `name/...` sorts before `name0`): a name that
    is a file and also a directory at TS (keys `a` and `a/b`) cannot be
    written as both, and is refused, never half-written.
    """

    def __init__(self, cfg: DrConfig, scope: Scope, ts: datetime) -> None:
        self.cfg, self.scope, self.ts = cfg, scope, ts
        self.decided: list[KeyAtTs] = []
        self.names: dict[str, str] = {}
        self.refused: list[RefusedKey] = []
        self.markers: list[str] = []
        self.emitted = 0
        self._stop = threading.Event()
        self.collisions: list[list[str]] = []
        self._folded: dict[str, tuple[str, str]] = {}  # folded file name -> (its name, the first key with it)
        self._folded_dirs: dict[str, tuple[str, str]] = {}  # folded directory -> (its name, the first key under it)
        self._folds: bool | None = None  # probed at the first collision: most restores have none

    def _twin(self, name: str, key: str) -> str | None:
        """The earlier key that lands on the same path as `name` where names fold; recorded as a collision.

        The same file (`README.md`, `Readme.md`), or a file and a directory
        (`Guide`, `guide/intro.md`): where names fold, either would write
        over the other or fail the restore. A file and a directory with
        exactly one name are left to the file-and-directory rule.
        """
        folded = fold_name(name)
        parts = name.split("/")
        clashes = [self._folded.get(folded), self._folded_dirs.get(folded)]
        for i in range(1, len(parts)):
            below, fdir = "/".join(parts[:i]), fold_name("/".join(parts[:i]))
            clashes.append(self._folded.get(fdir))
            self._folded_dirs.setdefault(fdir, (below, key))
        self._folded.setdefault(folded, (name, key))
        for i, clash in enumerate(clashes):
            exact = name if i < 2 else "/".join(parts[: i - 1])
            if clash is not None and clash[1] != key and clash[0] != exact:
                self.collisions.append([clash[1], key])
                return clash[1]
        return None

    def fs_folds(self) -> bool:
        if self._folds is None:
            self._folds = folds_names(self.cfg.restore_path)
        return self._folds

    def stop(self) -> None:
        self._stop.set()

    def decide(self, entries: Iterable[ObjectVersion], emit: Callable[[tuple[str, ObjectVersion]], None]) -> None:
        """Go through the listing once; `emit` each (name, version) to write, in key order."""
        cfg, scope = self.cfg, self.scope
        held: deque[tuple[str, ObjectVersion]] = deque()
        dirs: set[str] = set()

        def release(upto: str | None) -> None:
            while held and (upto is None or upto >= held[0][0] + "0"):
                n, e = held.popleft()
                if n in dirs:
                    self.refused.append(
                        RefusedKey(e.key, f"{n!r} is both a file and a directory at TS; the directory was restored")
                    )
                else:
                    self.emitted += 1
                    emit((n, e))

        in_scope = ((scope.name_for(cfg, e.key), e) for e in entries)
        for d in versions_at((e for n, e in in_scope if n is not None), self.ts):
            if self._stop.is_set():
                return
            self.decided.append(d)
            n = scope.name_for(cfg, d.key)
            assert n is not None
            self.names[d.key] = n
            release(n)
            if d.entry is None:
                continue
            if (n == "" or n.endswith("/")) and d.entry.size == 0:
                self.markers.append(d.key)  # a "folder" object some consoles create: nothing to write
                continue
            problem = Guard.key_problem(n)
            if problem:
                self.refused.append(RefusedKey(d.key, problem))
                continue
            twin = self._twin(n, d.key)
            if twin is not None and self.fs_folds():
                self.refused.append(
                    RefusedKey(
                        d.key,
                        f"same file as {twin!r} on this file system (it ignores case or Unicode normalization): "
                        "not written, so neither overwrites the other",
                    )
                )
                continue
            parts = n.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
            held.append((n, d.entry))
        release(None)

    def stream(self, listing: Callable[[], Iterable[ObjectVersion]]) -> Iterator[tuple[str, ObjectVersion]]:
        """Start `decide` over `listing()` on a thread of its own, now; iterate what it emits.

        Its errors are raised by the iterator. Started here, not at the first
        `next`, so that what the caller does before it (awscrt's import and
        client) overlaps the first page's round trip.
        """
        out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        end = object()

        def work() -> None:
            try:
                self.decide(listing(), out.put)
                out.put(end)
            except BaseException as err:  # handed to the consumer, raised there
                out.put(_Raised(err))

        threading.Thread(target=work, name="dr-listing", daemon=True).start()

        def emitted() -> Iterator[tuple[str, ObjectVersion]]:
            try:
                while (item := out.get()) is not end:
                    if isinstance(item, _Raised):
                        raise item.error
                    yield item
            finally:
                self._stop.set()

        return emitted()


@dataclass
class _Raised:
    error: BaseException


def _refuse_empty(cfg: DrConfig, s3: S3, scope: Scope, ts: str, decided: list[KeyAtTs]) -> DrError:
    where = f"s3://{cfg.bucket}/{scope.key_prefix}"
    what = f"unit {scope.unit}" if scope.unit else (f"path {scope.path}" if scope.path else "the repo")
    if not decided:
        hint = "check the name and dr.prefix / dr.units"
        if scope.kind == "unit":
            units_prefix = cfg.key_for(cfg.units)
            prefixes, _ = s3.list_prefixes(cfg.bucket, units_prefix)
            names = [p[len(units_prefix) :].rstrip("/") for p in prefixes]
            if names:
                shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
                hint = f"units in the bucket: {shown}"
        return DrError(f"{what} had no objects at {ts}: there are no keys under {where} at all", hint)
    born = [d for d in decided if d.state == "not-yet"]
    deleted = [d for d in decided if d.state == "deleted"]
    detail = []
    hint = "pick another time"
    if born:
        earliest = min(d.oldest for d in born)
        detail.append(f"{len(born)} keys were created later (the earliest at {iso_utc(earliest)})")
        hint = f"pick a time at or after {iso_utc(earliest)}"
    if deleted:
        detail.append(f"{len(deleted)} keys were deleted (a delete marker was current)")
    if not detail:
        detail.append("its keys are only empty directory markers")
    return DrError(f"{what} had no objects at {ts}: " + "; ".join(detail), hint)


def restore_at(
    cfg: DrConfig,
    ts: str | datetime,
    *,
    unit: str | None = None,
    path: str | None = None,
    all_: bool = False,
    force: bool = False,
    full: bool = False,
    progress: Progress = NULL_PROGRESS,
    s3: S3 | None = None,
    now: datetime | None = None,
) -> RestoreResult:
    """Restore `unit` (or `path`, or everything) as it was at `ts` into the holding dir.

    Raises DrError on any refusal (bad TS, unsafe or existing holding dir,
    nothing at TS) or download failure, leaving no holding dir behind. Keys
    refused for safety do not raise: they are in `result.refused`, every other
    key was restored, and `result.ok` is False.
    """
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    ts_input = ts if isinstance(ts, str) else iso_utc(ts)
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise DrError("the point in time has no timezone", "pass an aware datetime, e.g. with tzinfo=timezone.utc")
        ts_dt = ts.astimezone(timezone.utc)
    else:
        ts_dt = parse_ts(ts, now)
    scope = resolve_scope(cfg, unit, path, all_)
    ts_iso = iso_utc(ts_dt)
    name = f"{scope.stem}-{compact_utc(ts_dt)}"
    holding = cfg.restore_path / name
    receipt = cfg.restore_path / f"{name}.json"
    _check_restore_dir(cfg, name)
    exists = holding.exists() or holding.is_symlink()
    if exists and not force:
        raise DrError(
            f"the holding dir {cfg.restore_dir}/{name}/ exists already (from an earlier restore)",
            "review it and remove it, or pass --force to replace it",
        )
    if exists and (holding.is_symlink() or not holding.is_dir()):
        raise DrError(f"{holding} is not a directory; --force only replaces an earlier holding dir", "move it away")

    warnings: list[str] = []
    future = ts_dt > now
    if future:
        warnings.append(
            f"{ts_iso} is in the future (now {iso_utc(now.replace(microsecond=0))}): restoring the current state"
        )
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    # Asked while the listing runs: the answer only adds a warning, and on a
    # distant region it is one round trip less before the first download.
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dr-versioning")
    versioning = side.submit(s3.versioning, cfg.bucket)
    side.shutdown(wait=False)

    # 2. which version of each key was current at TS, decided on a thread of
    # its own while 3. downloads what is decided
    decisions = _Decisions(cfg, scope, ts_dt)
    items = decisions.stream(lambda: s3.iter_versions(cfg.bucket, scope.key_prefix, skip=cfg.reserved_prefixes()))
    # The pid in the name lets a later restore remove what a killed one left.
    staging = cfg.restore_path / f".{name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def make_staging() -> None:
        cfg.restore_path.mkdir(parents=True, exist_ok=True)
        _sweep_dead_staging(cfg.restore_path)
        staging.mkdir()

    def staged(items: Iterator[tuple[str, ObjectVersion]]) -> Iterator[tuple[str, ObjectVersion]]:
        # Made at the first key to write: a restore refused for having nothing
        # at TS leaves not even an empty restore dir.
        for i, item in enumerate(items):
            if i == 0:
                make_staging()
            yield item

    refused: list[RefusedKey] = []
    progress.start(f"restoring from s3://{cfg.bucket}/{scope.key_prefix} as at {ts_iso}")
    try:
        try:
            restored = _download_all(cfg, s3, staging, staged(items), refused, progress)
        finally:
            decisions.stop()
            progress.stop()
        refused += decisions.refused
        if decisions.collisions and not decisions.fs_folds():
            shown = "; ".join(f"{a!r} and {b!r}" for a, b in decisions.collisions[:10])
            more = f" and {len(decisions.collisions) - 10} more" if len(decisions.collisions) > 10 else ""
            warnings.append(
                f"{len(decisions.collisions)} pairs of keys differ only in case or Unicode normalization: {shown}"
                f"{more}; all restored here, but on a case-insensitive file system (macOS, Windows) each pair "
                "is one file: copy them there by hand and one overwrites the other"
            )
        versioned = versioning.result() == "Enabled"
        if not versioned:
            warnings.append(UNVERSIONED_WARNING)
        if not decisions.emitted and not refused:
            raise _refuse_empty(cfg, s3, scope, ts_iso, decisions.decided)
        if not staging.exists():
            # Every key was refused: the holding dir is still made, empty, so
            # the receipt and the report point at something.
            make_staging()
        diff = compute_diff(cfg, scope, staging, restored, f"at-{compact_utc(ts_dt)}", full)
        replaced = _publish(cfg, staging, holding, force)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

    names, decided = decisions.names, decisions.decided
    ambiguous = [d.ambiguity for d in decided if d.ambiguity is not None]
    warnings.extend(f"version order: {a.describe()}" for a in ambiguous[:AMBIGUOUS_WARNED])
    if len(ambiguous) > AMBIGUOUS_WARNED:
        warnings.append(f"version order: {len(ambiguous) - AMBIGUOUS_WARNED} more keys like these (see the receipt)")
    result = RestoreResult(
        scope=scope.kind,
        unit=scope.unit,
        path=scope.path,
        ts=ts_iso,
        ts_input=ts_input,
        future=future,
        bucket=cfg.bucket,
        key_prefix=scope.key_prefix,
        versioned=versioned,
        holding_dir=f"{cfg.restore_dir}/{name}/",
        holding_path=str(holding),
        receipt=f"{cfg.restore_dir}/{name}.json",
        restored=sorted(restored, key=lambda f: f.name),
        deleted_at_ts=sorted(names[d.key] for d in decided if d.state == "deleted"),
        born_after_ts=sorted(names[d.key] for d in decided if d.state == "not-yet"),
        directory_markers=decisions.markers,
        refused=sorted(refused, key=lambda r: r.key),
        diff=diff,
        replaced_existing=replaced,
        warnings=warnings,
        ambiguous=ambiguous,
        name_collisions=decisions.collisions,
    )
    result.seconds = round(time.monotonic() - started, 3)
    _write_json(receipt, result.receipt_dict(iso_utc(now.replace(microsecond=0))))
    return result


def _sweep_dead_staging(restore_path: Path) -> None:
    """Remove staging dirs of restores whose process is gone (killed mid-download)."""
    for d in restore_path.glob(".*.partial-*-*"):
        pid = d.name.rsplit(".partial-", 1)[-1].split("-", 1)[0]
        if d.is_dir() and not d.is_symlink() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


# What a file system answers for a name it will not hold (too long a segment
# or path; bytes or characters it does not allow): a fact about that key on
# this disk, not a failure of the restore.
NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})
# Temp names are this plus a counter: short, whatever the key's length, so any
# name the file system takes can be downloaded through one.
TEMP_STEM = ".dr-part-"


def _name_max(path: Path) -> int:
    """The longest file name (bytes) the file system under `path` (or its nearest existing parent) takes."""
    for p in (path, *path.parents):
        try:
            return int(os.pathconf(p, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):  # gone, no such limit, or no pathconf (Windows)
            continue
    return 255


def _name_problem(name: str, name_max: int) -> str | None:
    """Why the file system cannot hold `name` (a relative path), or None."""
    for part in name.split("/"):
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > name_max:
            return (
                f"File name too long: a name of {size} bytes; this file system takes at most {name_max} (not written)"
            )
    return None


def _download_all(
    cfg: DrConfig,
    s3: S3,
    staging: Path,
    present: Iterable[tuple[str, ObjectVersion]],
    refused: list[RefusedKey],
    progress: Progress,
) -> list[RestoredFile]:
    """Download `present` (which may still be streaming in) into `staging`; raise DrError if any failed."""
    # Directories already checked (not symlinks) and created: each once per
    # restore, not once per file (that was a fifth of the workers' time).
    verified: set[Path] = set()
    made: set[Path] = set()
    # One random tag per restore plus a counter: no key of the bucket (which
    # may be named anything) can collide with a temp name, and no uuid per file.
    tag = uuid.uuid4().hex[:8]
    counter = itertools.count()
    name_max = _name_max(cfg.restore_path)

    def disk_refused(item: tuple[str, ObjectVersion], err: OSError) -> bool:
        """Record a key whose name the file system refuses; False for any other error."""
        if err.errno not in NAME_ERRNOS:
            return False
        refused.append(RefusedKey(item[1].key, f"the file system refuses this name: {err.strerror} (not written)"))
        return True

    def prepare(item: tuple[str, ObjectVersion]) -> tuple[Path, Path] | None:
        name, v = item
        problem = _name_problem(name, name_max)
        if problem:
            refused.append(RefusedKey(v.key, problem))
            return None
        try:
            target = Guard.safe_join(staging, name, verified)
        except GuardError as err:
            refused.append(RefusedKey(v.key, err.message))
            return None
        tmp = target.parent / f"{TEMP_STEM}{tag}-{next(counter)}"
        if target.parent not in made:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                if disk_refused(item, err):
                    return None
                raise _write_error(name, v, err) from None
            made.add(target.parent)
        return target, tmp

    def publish(item: tuple[str, ObjectVersion], target: Path, tmp: Path, sha: str) -> RestoredFile | None:
        name, v = item
        try:
            mtime = v.last_modified.timestamp()
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, target)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            if disk_refused(item, err):
                return None
            raise _write_error(name, v, err) from None
        return _restored(name, v, sha)

    def fetch(item: tuple[str, ObjectVersion]) -> RestoredFile | None:
        paths = prepare(item)
        if paths is None:
            return None
        target, tmp = paths
        try:
            sha = s3.download_version(cfg.bucket, item[1], tmp)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            if disk_refused(item, err):
                return None
            raise _write_error(item[0], item[1], err) from None
        except DrError:
            tmp.unlink(missing_ok=True)
            raise
        return publish(item, target, tmp, sha)

    bulk = bulk_for(s3, cfg.concurrency) if cfg.transfer_client == "crt" else None
    if bulk is None:
        done, failed = run_parallel(fetch, present, cfg.concurrency, progress)
    else:
        done, failed = _download_bulk(bulk, cfg.bucket, present, prepare, publish, disk_refused, progress)
    if failed:
        names = ", ".join(f.item[1].key for f in failed[:5]) + (" ..." if len(failed) > 5 else "")
        raise DrError(
            f"restore failed: {len(failed)} of {len(done) + len(failed)} downloads failed ({names}); "
            f"first error: {failed[0].error.message}; nothing was left in {cfg.restore_dir}/",
            "run the same command again once the cause is fixed",
        )
    return [r for _, r in done if r is not None]


def _download_bulk(
    bulk: BulkS3,
    bucket: str,
    present: Iterable[tuple[str, ObjectVersion]],
    prepare: Callable[[tuple[str, ObjectVersion]], tuple[Path, Path] | None],
    publish: Callable[[tuple[str, ObjectVersion], Path, Path, str], RestoredFile | None],
    disk_refused: Callable[[tuple[str, ObjectVersion], OSError], bool],
    progress: Progress,
) -> tuple[list[tuple[tuple[str, ObjectVersion], RestoredFile | None]], list[Failure[tuple[str, ObjectVersion]]]]:
    """The same downloads through awscrt: paths checked and files renamed here, bytes moved in C."""
    done: list[tuple[tuple[str, ObjectVersion], RestoredFile | None]] = []
    failed: list[Failure[tuple[str, ObjectVersion]]] = []

    def jobs() -> Iterator[GetJob[tuple[tuple[str, ObjectVersion], Path]]]:
        for item in present:
            paths = prepare(item)
            if paths is None:
                progress.advance()
                continue
            target, tmp = paths
            v = item[1]
            job = GetJob((item, target), bucket, v.key, v.version_id, v.size, v.etag_plain, tmp)
            if job.in_memory:
                # Written once, already checked, with its mtime: straight to its
                # name (the staging dir as a whole is what gets published).
                job.dest, job.mtime = target, v.last_modified.timestamp()
            yield job

    for job, outcome in bulk.download_versions(jobs()):
        item, target = job.tag
        progress.advance()
        if isinstance(outcome, DrError):
            job.dest.unlink(missing_ok=True)
            if isinstance(outcome, WriteFailed):
                if disk_refused(item, outcome.error):
                    continue
                outcome = _write_error(item[0], item[1], outcome.error)
            failed.append(Failure(item, outcome))
            continue
        if job.dest == target:
            name, v = item
            done.append((item, _restored(name, v, outcome)))
            continue
        try:
            done.append((item, publish(item, target, job.dest, outcome)))
        except DrError as err:
            failed.append(Failure(item, err))
    return done, failed


def _restored(name: str, v: ObjectVersion, sha: str) -> RestoredFile:
    return RestoredFile(name, v.key, v.version_id, v.size, v.etag_plain, iso_utc(v.last_modified), sha)


def _write_error(name: str, v: ObjectVersion, err: OSError) -> DrError:
    return DrError(f"cannot write {name} (from {v.key}): {err.strerror}", "check disk space and permissions")


def _publish(cfg: DrConfig, staging: Path, holding: Path, force: bool) -> bool:
    """Move the staged tree to its final name; with `force`, swap out (then delete) the old one."""
    old: Path | None = None
    if holding.exists():
        if not force:
            raise DrError(f"the holding dir {holding} appeared while restoring", "another restore ran; check it")
        old = holding.with_name(f".{holding.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(holding, old)
    try:
        os.rename(staging, holding)
    except OSError as err:
        if old is not None:
            os.rename(old, holding)
        raise DrError(f"cannot create {holding}: {err.strerror}", "check the restore dir's permissions") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return old is not None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
