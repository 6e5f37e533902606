"""Versions into the staging dir: each through a short temp file, checked, renamed into place."""

from __future__ import annotations

import errno
import itertools
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from ...config import DrConfig
from ...errors import DrError
from ...guard import Guard, GuardError
from ...parallel import Failure
from ...progress import Progress
from ...timeparse import iso_utc
from ...transport import S3, Engine, GetJob, ObjectVersion, WriteFailed, engine_for
from .results import RefusedKey, RestoredFile

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


Item = tuple[str, ObjectVersion]  # (name in the holding dir, the version to write there)


class _Writer:
    """Paths in the staging dir for one restore: checked, their directories made, files renamed into place.

    Names the file system refuses are recorded in `refused`, not raised.
    """

    def __init__(self, staging: Path, name_max: int, refused: list[RefusedKey]) -> None:
        self.staging, self.name_max, self.refused = staging, name_max, refused
        # Directories already checked (not symlinks) and created: each once per
        # restore, not once per file (bench/README.md, finding 1).
        self.verified: set[Path] = set()
        self.made: set[Path] = set()
        # One random tag per restore plus a counter: no key of the bucket (which
        # may be named anything) can collide with a temp name, and no uuid per file.
        self.tag = uuid.uuid4().hex[:8]
        self.counter = itertools.count()

    def disk_refused(self, item: Item, err: OSError) -> bool:
        """Record a key whose name the file system refuses; False for any other error."""
        if err.errno not in NAME_ERRNOS:
            return False
        self.refused.append(RefusedKey(item[1].key, f"the file system refuses this name: {err.strerror} (not written)"))
        return True

    def prepare(self, item: Item) -> tuple[Path, Path] | None:
        """(target, temp file) for `item`, its directory made; None when refused."""
        name, v = item
        problem = _name_problem(name, self.name_max)
        if problem:
            self.refused.append(RefusedKey(v.key, problem))
            return None
        try:
            target = Guard.safe_join(self.staging, name, self.verified)
        except GuardError as err:
            self.refused.append(RefusedKey(v.key, err.message))
            return None
        tmp = target.parent / f"{TEMP_STEM}{self.tag}-{next(self.counter)}"
        if target.parent not in self.made:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                if self.disk_refused(item, err):
                    return None
                raise _write_error(name, v, err) from None
            self.made.add(target.parent)
        return target, tmp

    def publish(self, item: Item, target: Path, tmp: Path, sha: str) -> RestoredFile | None:
        """Give the checked temp file its mtime and its name."""
        name, v = item
        try:
            mtime = v.last_modified.timestamp()
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, target)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            if self.disk_refused(item, err):
                return None
            raise _write_error(name, v, err) from None
        return _restored(name, v, sha)


def download_all(
    cfg: DrConfig,
    s3: S3,
    staging: Path,
    present: Iterable[Item],
    refused: list[RefusedKey],
    progress: Progress,
) -> list[RestoredFile]:
    """Download `present` (which may still be streaming in) into `staging`; raise DrError if any failed."""
    done, failed = fetch_each(cfg, s3, staging, present, refused, progress)
    if failed:
        names = ", ".join(f.item[1].key for f in failed[:5]) + (" ..." if len(failed) > 5 else "")
        raise DrError(
            f"restore failed: {len(failed)} of {len(done) + len(failed)} downloads failed ({names}); "
            f"first error: {failed[0].error.message}; nothing was left in {cfg.restore_dir}/",
            "run the same command again once the cause is fixed",
        )
    return done


def fetch_each(
    cfg: DrConfig,
    s3: S3,
    staging: Path,
    present: Iterable[Item],
    refused: list[RefusedKey],
    progress: Progress,
) -> tuple[list[RestoredFile], list[Failure[Item]]]:
    """`download_all` for a caller that reports each failed key itself (the live drill): nothing raised for them."""
    writer = _Writer(staging, _name_max(cfg.restore_path), refused)
    done, failed = _download_bulk(
        engine_for(s3, cfg.transfer_client, cfg.concurrency), cfg.bucket, present, writer, progress
    )
    return [r for _, r in done if r is not None], failed


def _download_bulk(
    engine: Engine,
    bucket: str,
    present: Iterable[Item],
    writer: _Writer,
    progress: Progress,
) -> tuple[list[tuple[Item, RestoredFile | None]], list[Failure[Item]]]:
    """The downloads, through the engine: paths checked and files renamed here, bytes moved by the engine."""
    done: list[tuple[Item, RestoredFile | None]] = []
    failed: list[Failure[Item]] = []

    def jobs() -> Iterator[GetJob[tuple[Item, Path]]]:
        for item in present:
            paths = writer.prepare(item)
            if paths is None:
                progress.advance()
                continue
            target, tmp = paths
            v = item[1]
            job = GetJob((item, target), bucket, v, tmp)
            if job.in_memory:
                # Written once, already checked, with its mtime: straight to its
                # name (the staging dir as a whole is what gets published).
                job.dest, job.mtime = target, v.last_modified.timestamp()
            yield job

    for job, outcome in engine.download_versions(jobs()):
        item, target = job.tag
        progress.advance()
        if isinstance(outcome, DrError):
            job.dest.unlink(missing_ok=True)
            if isinstance(outcome, WriteFailed):
                if writer.disk_refused(item, outcome.error):
                    continue
                outcome = _write_error(item[0], item[1], outcome.error)
            failed.append(Failure(item, outcome))
            continue
        if job.dest == target:
            name, v = item
            done.append((item, _restored(name, v, outcome)))
            continue
        try:
            done.append((item, writer.publish(item, target, job.dest, outcome)))
        except DrError as err:
            failed.append(Failure(item, err))
    return done, failed


def _restored(name: str, v: ObjectVersion, sha: str) -> RestoredFile:
    return RestoredFile(name, v.key, v.version_id, v.size, v.etag_plain, iso_utc(v.last_modified), sha)


def _write_error(name: str, v: ObjectVersion, err: OSError) -> DrError:
    return DrError(f"cannot write {name} (from {v.key}): {err.strerror}", "check disk space and permissions")
