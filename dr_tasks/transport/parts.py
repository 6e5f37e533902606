"""A multipart ETag as a hash of the bytes: the MD5 of its parts' MD5s, once the parts' sizes are known.

S3 gives an object written in N parts the ETag `md5(md5(part 1) + ... +
md5(part N))-N`. That is no MD5 of the whole, but it is a hash of the bytes
all the same: whoever knows where the parts end can recompute it from bytes
read back and compare. Where the parts end comes from the server when it
says (HeadObject with partNumber=1 gives the first part's length and the
part count; AWS, moto and newer Ceph do), else from the part sizes uploaders
use (s3transfer's 8 MiB and its doublings, rclone's 5 MiB, dr-tasks' own
copy part size, ...), each tried in the same pass over the bytes.

A match proves the bytes. No match, when the server gave the parts' exact
sizes, is a mismatch. No match with only guessed sizes proves nothing
either way: unverifiable. The engines accept neither: the object is fetched
again, then refused, naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import proof
from . import checks

if TYPE_CHECKING:
    from .client import S3Base
    from .model import ObjectVersion

MIB = 1 << 20
# Part sizes uploaders use, most common first: s3transfer (boto3, aws-cli) 8 MiB and the doublings
# it moves to past 10,000 parts; rclone 5 MiB, s3cmd 15 MiB, MinIO's mc 16 MiB.
_COMMON_MIB = (8, 5, 16, 15, 10, 32, 64, 100, 128, 256, 512, 1024)
# At most this many guessed part sizes are hashed (each costs one more MD5 of the bytes).
MAX_GUESSES = 8


def parts_count(etag: str) -> int | None:
    """N for a multipart ETag (`<32 hex>-N`), else None."""
    head, sep, n = proof.plain(etag).rpartition("-")
    if sep and n.isdigit() and int(n) > 0 and proof.could_be_md5(head):
        return int(n)
    return None


def fits(size: int, count: int, part: int) -> bool:
    """Whether `count` parts of `part` bytes (the last one shorter) make `size` bytes."""
    return part > 0 and -(-size // part) == count if size else count == 1


def guessed_part_sizes(size: int, count: int, known: Iterable[int | None] = ()) -> list[int]:
    """Uniform part sizes that give `count` parts for `size` bytes, `known` ones first, most likely next."""
    even = -(-size // count)
    # Uploaders that grow their parts to stay under 10,000 round the even split up: to a MiB (rclone),
    # or to their base size (mc: 16 MiB).
    tried = [*known, *(m * MIB for m in _COMMON_MIB), -(-even // MIB) * MIB, -(-even // (16 * MIB)) * 16 * MIB, even]
    out: list[int] = []
    for p in tried:
        if p and fits(size, count, p) and p not in out:
            out.append(p)
    return out[:MAX_GUESSES]


def uniform(size: int, part: int) -> list[int]:
    """The part lengths of `size` bytes cut into `part`-byte parts."""
    return [min(part, size - start) for start in range(0, size, part)] or [0]


def etag_of(part_md5s: Iterable[bytes]) -> str:
    digests = list(part_md5s)
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


@dataclass
class _Cut:
    """One candidate layout being hashed: its part lengths, the finished parts' MD5s, the current part."""

    lengths: list[int]
    done: list[bytes] = field(default_factory=list)
    current: Any = field(default_factory=hashlib.md5)
    filled: int = 0
    over: bool = False  # more bytes came than the layout holds: it cannot match


class PartHashes:
    """The multipart ETag each candidate layout would give the bytes fed in, all in one pass."""

    def __init__(self, layouts: Iterable[list[int]]) -> None:
        self._cuts = [_Cut(list(lengths)) for lengths in layouts]

    def update(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        for cut in self._cuts:
            pos = 0
            while pos < len(view) and not cut.over:
                part = len(cut.done)
                if part >= len(cut.lengths):
                    cut.over = True
                    break
                take = min(cut.lengths[part] - cut.filled, len(view) - pos)
                cut.current.update(view[pos : pos + take])
                cut.filled += take
                pos += take
                if cut.filled == cut.lengths[part]:
                    cut.done.append(cut.current.digest())
                    cut.current, cut.filled = hashlib.md5(), 0

    def etags(self) -> list[str]:
        """One ETag per layout the bytes filled exactly."""
        return [etag_of(c.done) for c in self._cuts if not c.over and len(c.done) == len(c.lengths) and not c.filled]


@dataclass(frozen=True)
class Layout:
    """What the server says of an object's parts: the first part's length and the count (None: it does not say)."""

    first: int | None
    count: int | None


def prove(
    etag: str,
    size: int,
    read: Callable[[], Iterable[bytes]],
    layout: Callable[[int], Layout],
    part_lengths: Callable[[int], list[int] | None],
    configured: Iterable[int] = (),
) -> proof.Proof:
    """The bytes `read()` yields, against the multipart ETag `etag` of a `size`-byte object.

    `layout(1)` asks the server for part 1 (one HEAD); `part_lengths(n)` asks
    for every part's length (n HEADs), used only when the server gave the
    layout and the uniform cut did not match (an upload of uneven parts).
    """
    count = parts_count(etag)
    if count is None:
        return proof.Proof(proof.Verdict.UNVERIFIABLE, f"ETag {proof.plain(etag)} is not a multipart ETag")
    told = layout(1)
    exact = told.count == count and told.first is not None and fits(size, count, told.first)
    layouts = [uniform(size, p) for p in guessed_part_sizes(size, count, [told.first if exact else None, *configured])]
    hashes = PartHashes(layouts)
    for chunk in read():
        hashes.update(chunk)
    want = proof.plain(etag)
    if want in hashes.etags():
        return proof.PROVEN
    if not exact:
        return proof.Proof(
            proof.Verdict.UNVERIFIABLE,
            f"the bytes read do not hash to the multipart ETag {want} in any of {len(layouts)} usual part "
            "sizes, and the server does not say where its parts end: damaged on the way, or uploaded in parts "
            "of an unusual size (then fetch that version by hand and check it)",
        )
    lengths = part_lengths(count) if count > 2 else None
    if lengths and sum(lengths) == size and lengths != uniform(size, told.first or size):
        hashes = PartHashes([lengths])
        for chunk in read():
            hashes.update(chunk)
        if want in hashes.etags():
            return proof.PROVEN
    return proof.Proof(
        proof.Verdict.MISMATCH,
        f"the bytes read, cut where the server says its {count} parts end, do not hash to the ETag {want}",
    )


def applies(etag: str, encrypted: bool) -> bool:
    """Whether `prove_version` can tell anything: a multipart ETag, not hidden by SSE-KMS / SSE-C."""
    return not encrypted and parts_count(etag) is not None


def file_chunks(path: Path, size: int = MIB) -> Callable[[], Iterator[bytes]]:
    def read() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while chunk := fh.read(size):
                yield chunk

    return read


def prove_version(s3: S3Base, bucket: str, obj: ObjectVersion, read: Callable[[], Iterable[bytes]]) -> proof.Proof:
    """`prove` for one listed version, asking `s3`'s server for its parts (HeadObject partNumber=N)."""

    def layout(n: int) -> Layout:
        try:
            head = s3.client.head_object(
                Bucket=bucket, Key=obj.key, PartNumber=n, **checks.version_query(obj.version_id)
            )
        except (ClientError, BotoCoreError):
            return Layout(None, None)  # a server that does not know partNumber may refuse it
        count = head.get("PartsCount")
        return Layout(int(head["ContentLength"]), int(count)) if count else Layout(None, None)

    def lengths(count: int) -> list[int] | None:
        got = [layout(n).first for n in range(1, count + 1)]
        return None if None in got else [int(n or 0) for n in got]

    return prove(obj.etag, obj.size, read, layout, lengths, [s3.config.copy_part_size])
