"""The holding dir: its staging dir, the swap into place, the receipt beside it."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ...config import DrConfig
from ...errors import DrError

T = TypeVar("T")


def check_holding_free(cfg: DrConfig, holding: Path, force: bool) -> None:
    """Refuse a holding dir an earlier restore left, unless `force` (then it must be a real directory)."""
    exists = holding.exists() or holding.is_symlink()
    if exists and not force:
        raise DrError(
            f"the holding dir {cfg.restore_dir}/{holding.name}/ exists already (from an earlier restore)",
            "review it and remove it, or pass --force to replace it",
        )
    if exists and (holding.is_symlink() or not holding.is_dir()):
        raise DrError(f"{holding} is not a directory; --force only replaces an earlier holding dir", "move it away")


class Staging:
    """The staging dir beside the holding dir: made at the first key to write, removed unless published."""

    def __init__(self, restore_path: Path, name: str) -> None:
        self.restore_path = restore_path
        # The pid in the name lets a later restore remove what a killed one left.
        self.path = restore_path / f".{name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def make(self) -> None:
        self.restore_path.mkdir(parents=True, exist_ok=True)
        sweep_dead_staging(self.restore_path)
        self.path.mkdir()

    def made_at_first(self, items: Iterable[T]) -> Iterator[T]:
        # Made at the first key to write: a restore refused for having nothing
        # at TS leaves not even an empty restore dir.
        for i, item in enumerate(items):
            if i == 0:
                self.make()
            yield item

    def ensure(self) -> None:
        if not self.path.exists():
            self.make()

    def remove(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)


def sweep_dead_staging(restore_path: Path) -> None:
    """Remove staging dirs of restores whose process is gone (killed mid-download)."""
    for d in restore_path.glob(".*.partial-*-*"):
        pid = d.name.rsplit(".partial-", 1)[-1].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or not d.is_dir() or d.is_symlink():
            continue
        # Loaded only for another process's dir: a restore is a reader, and
        # the lease package (with the index it writes to) is not on its path.
        from ...lease import pid_alive

        if not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def publish_holding(cfg: DrConfig, staging: Path, holding: Path, force: bool) -> bool:
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


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
