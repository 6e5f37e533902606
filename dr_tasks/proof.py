"""The one place that decides "these are the bytes we expect".

Bytes are accepted on proof only: an ETag exactly equal to one dr-tasks
recorded for them (the manifest's, or the one it recorded when it wrote a copy),
or the bytes re-read and hashed to a recorded SHA-256, or to an MD5 equal to a
recorded ETag, or to the multipart ETag the server gave them (recomputed where
the parts end: transport/parts.py). An ETag's shape (with or without "-N") and a
matching size never prove anything: the same size is what a same-size edit has
too. Shape and size are used only to *refuse*.

Every path that decides whether an object is intact or unchanged (rollback's
and verify's snapshot checks, recover's "same" decision, the transfer checks
of restore, backup and recover) asks this module and acts on its verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    PROVEN = "proven"
    MISMATCH = "mismatch"
    UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True)
class Proof:
    """A verdict and, unless proven, why (worded to follow a key: "state/x (…)")."""

    verdict: Verdict
    why: str = ""

    @property
    def proven(self) -> bool:
        return self.verdict is Verdict.PROVEN

    @property
    def mismatch(self) -> bool:
        return self.verdict is Verdict.MISMATCH


PROVEN = Proof(Verdict.PROVEN)
UNVERIFIED = Verdict.UNVERIFIABLE


def plain(etag: str) -> str:
    """An ETag without its quotes, lower-cased: the form every comparison here uses."""
    return etag.strip().strip('"').lower()


def could_be_md5(etag: str) -> bool:
    """Whether `etag` has the shape of a whole-object MD5.

    Only ever a reason to compute an MD5 or to refuse bytes whose MD5 differs
    (see `in_transit`); never a reason to accept anything.
    """
    e = plain(etag)
    return len(e) == 32 and all(ch in "0123456789abcdef" for ch in e)


def _recorded(etags: Iterable[str | None]) -> set[str]:
    return {plain(e) for e in etags if isinstance(e, str) and plain(e)}


def by_etag(size: int, etag: str, *, expected_size: int, recorded: Iterable[str | None]) -> Proof:
    """An object as a listing shows it, against the size and the ETags recorded for its bytes."""
    if size != expected_size:
        return Proof(Verdict.MISMATCH, f"size {size}, recorded {expected_size}")
    known = _recorded(recorded)
    if plain(etag) in known:
        return PROVEN
    return Proof(Verdict.UNVERIFIABLE, f"ETag {plain(etag)} is none of the recorded {', '.join(sorted(known)) or '-'}")


def by_bytes(
    size: int,
    md5_hex: str,
    sha256_hex: str,
    *,
    expected_size: int,
    sha256: str | None = None,
    recorded: Iterable[str | None] = (),
) -> Proof:
    """Bytes re-read and hashed, against a recorded SHA-256 or an MD5 recorded as an ETag."""
    if size != expected_size:
        return Proof(Verdict.MISMATCH, f"{size} bytes, recorded {expected_size}")
    if isinstance(sha256, str) and sha256:
        if sha256_hex.lower() == sha256.lower():
            return PROVEN
        return Proof(Verdict.MISMATCH, f"sha256 {sha256_hex[:16]}..., recorded {sha256[:16]}...")
    known = _recorded(recorded)
    if md5_hex.lower() in known:
        return PROVEN
    return Proof(
        Verdict.UNVERIFIABLE,
        f"the bytes hash to MD5 {md5_hex}, none of the recorded ETags ({', '.join(sorted(known)) or '-'}), "
        "and no sha256 is recorded",
    )


def in_transit(read: int, size: int, md5_hex: str | None, etag: str, encrypted: bool = False) -> Proof:
    """Bytes just read from a GET, against the size and ETag the server gave for them.

    Proven when their MD5 is the ETag. A mismatch when the length differs, or
    when the ETag has an MD5's shape (and no SSE-KMS / SSE-C, whose ETags are
    not MD5s) and the MD5 differs. Otherwise (a multipart ETag, an encrypted
    object, no MD5 computed) nothing here proves the bytes: unverifiable, and
    the caller says what else it relies on.
    """
    if read != size:
        return Proof(Verdict.MISMATCH, f"read {read} bytes, expected {size}")
    if md5_hex is not None and md5_hex.lower() == plain(etag):
        return PROVEN
    if md5_hex is not None and not encrypted and plain(etag).endswith("-1"):
        # One part: the multipart ETag is the MD5 of the whole object's MD5.
        if hashlib.md5(bytes.fromhex(md5_hex)).hexdigest() == plain(etag)[:-2]:
            return PROVEN
        return Proof(Verdict.MISMATCH, f"the bytes read hash to MD5 {md5_hex}, not the one-part ETag {plain(etag)}")
    if md5_hex is not None and could_be_md5(etag) and not encrypted:
        return Proof(Verdict.MISMATCH, f"the bytes read hash to MD5 {md5_hex}, the ETag says {plain(etag)}")
    return Proof(Verdict.UNVERIFIABLE, f"ETag {plain(etag)} is no MD5 of the bytes; only the size was checked")
