"""The per-object work an engine does, and what it reports back, whichever engine does it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import DrError
from . import settings
from .model import ObjectVersion

T = TypeVar("T")


@dataclass
class GetJob(Generic[T]):
    """One object version `obj` to fetch into `dest`, with `mtime` (seconds) when given.

    The awscrt engine reads a version up to SMALL_OBJECT into memory, checks
    it, and only then writes it to `dest` (so `dest` may be the final name);
    a bigger one is written as it arrives and checked after (so `dest` should
    be a temp name the caller renames). The boto3 engine writes every version
    as it arrives, then checks it: a failed job's `dest` is the caller's to
    remove either way.
    """

    tag: T
    bucket: str
    obj: ObjectVersion
    dest: Path
    mtime: float | None = None

    @property
    def key(self) -> str:
        return self.obj.key

    @property
    def version_id(self) -> str | None:
        return self.obj.version_id

    @property
    def size(self) -> int:
        return self.obj.size

    @property
    def etag(self) -> str:
        return self.obj.etag_plain

    @property
    def in_memory(self) -> bool:
        return self.size <= settings.SMALL_OBJECT


@dataclass
class CopyJob(Generic[T]):
    """One object to copy from a source endpoint to `dst_key` on another (`Engine.copy_from`)."""

    tag: T
    src_bucket: str
    src_key: str
    dst_bucket: str
    dst_key: str


@dataclass
class ServerCopyJob(Generic[T]):
    """One object version to copy server-side, within this endpoint, to `dst_key` (at most 5 GiB)."""

    tag: T
    src_bucket: str
    src_key: str
    version_id: str | None
    dst_bucket: str
    dst_key: str


class SourceGrew(DrError):
    """A small copy's source is bigger than SMALL_OBJECT now (replaced since the listing).

    Not a failure: the engine copies it again through its streaming path.
    """

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(
            f"s3://{bucket}/{key} grew past {settings.SMALL_OBJECT} bytes since it was listed",
            "run the same command again",
        )


class WriteFailed(DrError):
    """A downloaded version that could not be written (or read back); `error` says why.

    The caller knows the name the user sees (the temp file here may not be
    it), so it words the message: see restore's `_write_error`.
    """

    def __init__(self, job: GetJob[Any], error: OSError) -> None:
        super().__init__(f"cannot write {job.key}: {error.strerror}", "check disk space and permissions")
        self.error = error
