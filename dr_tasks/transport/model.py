"""What a listing or a transfer hands back: object versions and transfer receipts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of a listing: an object version or a delete marker."""

    key: str
    version_id: str | None
    size: int
    etag: str
    last_modified: datetime
    is_latest: bool = True
    is_delete_marker: bool = False

    @property
    def etag_plain(self) -> str:
        return self.etag.strip('"')


@dataclass(frozen=True)
class StreamedObject:
    """What `S3.stream_copy` moved: size, both ETags (unquoted) and the MD5 of the bytes read.

    `md5` is "" for a multipart copy of a multipart source: its whole-object
    MD5 could be compared with nothing, so it is not computed.
    """

    size: int
    src_etag: str
    dst_etag: str
    md5: str


@dataclass(frozen=True)
class ObjectDigest:
    size: int
    etag: str
    md5: str
    sha256: str


@dataclass(frozen=True)
class Copied:
    """What a small cross-endpoint copy through awscrt moved: size and both ETags (unquoted)."""

    size: int
    src_etag: str
    dst_etag: str
