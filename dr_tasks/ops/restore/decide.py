"""Which (name, version) to write, decided on a thread of its own as the listing streams in."""

from __future__ import annotations

import os
import queue
import threading
import unicodedata
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ...config import DrConfig
from ...errors import DrError
from ...guard import Guard
from ...timeparse import iso_utc
from ...transport import S3, ObjectVersion
from .results import RefusedKey
from .scope import Scope
from .versions import KeyAtTs, versions_at


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
class Decisions:
    """Which version of each key in scope to write, decided as the listing streams in.

    `stream` lists on a thread of its own and yields each (name, version) to
    write as soon as it is safe to, so the first downloads start after the
    first page, not after the last one, and the listing's round trips overlap
    the downloads (bench/README.md, finding 13). A name is held back
    until the listing has passed every name that could be below it (listings
    are in key order, and every `name/...` sorts before `name0`): a name that
    is a file and also a directory at TS (keys `a` and `a/b`) cannot be
    written as both, and is refused, never half-written.
    """

    def __init__(self, cfg: DrConfig, scope: Scope, ts: datetime, probe: Callable[[Path], bool] = folds_names) -> None:
        self.cfg, self.scope, self.ts = cfg, scope, ts
        self._probe = probe
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
            self._folds = self._probe(self.cfg.restore_path)
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

    def stream(
        self, listing: Callable[[], Iterable[ObjectVersion]], on_decided: Callable[[int], None] | None = None
    ) -> Iterator[tuple[str, ObjectVersion]]:
        """Start `decide` over `listing()` on a thread of its own, now; iterate what it emits.

        Its errors are raised by the iterator. Started here, not at the first
        `next`, so that what the caller does before it (awscrt's import and
        client) overlaps the first page's round trip. `on_decided` gets how
        many were emitted once the listing is through (a progress bar's total).
        """
        out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        end = object()

        def work() -> None:
            try:
                self.decide(listing(), out.put)
                if on_decided is not None and not self._stop.is_set():
                    on_decided(self.emitted)
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


def refuse_empty(cfg: DrConfig, s3: S3, scope: Scope, ts: str, decided: list[KeyAtTs]) -> DrError:
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
