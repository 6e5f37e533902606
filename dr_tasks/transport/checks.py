"""The transport's one answer to "are these the bytes asked for", for both engines.

`proof` holds the verdicts; this module feeds it what a GET said (length,
MD5 of the bytes read, ETag, encryption, version id) the same way whichever
engine (botocore or awscrt) made the request. It is also the one place that
knows how S3 names a version ("null") and which encryption makes an ETag no MD5.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import proof

# The version id S3 gives what was written before versioning was turned on.
NULL_VERSION = "null"


def version_query(version_id: str | None) -> dict[str, str]:
    """The VersionId argument for a request on `version_id`, "null" included.

    "null" names the version written before versioning was on: left out, the
    store serves the current version, and a snapshot, restore or copy of that
    key would get bytes from after its listing.
    """
    return {"VersionId": version_id} if version_id else {}


def wrong_version(asked: str | None, got: str | None) -> str:
    """Why the version a GET returned is not the one asked for ("" when it is, or cannot be told).

    Stores differ in what they send back for the "null" version (no header,
    "null", or an id of their own), so only a real id is compared.
    """
    if asked and asked != NULL_VERSION and got and got != asked:
        return f"asked for version {asked}, the server sent {got}"
    return ""


def md5_hidden(sse: str | None, sse_customer_algorithm: str | None) -> bool:
    """Whether the object's encryption makes its ETag no MD5 of the bytes (SSE-KMS, SSE-C)."""
    return str(sse or "").startswith("aws:kms") or bool(sse_customer_algorithm)


def md5_hidden_by_headers(headers: Mapping[str, str]) -> bool:
    """`md5_hidden` from raw (lower-cased) response headers, for the awscrt engine."""
    return md5_hidden(
        headers.get("x-amz-server-side-encryption"), headers.get("x-amz-server-side-encryption-customer-algorithm")
    )


def worth_hashing(etag: str) -> bool:
    """Whether `etag` (unquoted) can be the MD5 of the bytes: worth hashing them to compare (see `proof`)."""
    return proof.could_be_md5(etag)


def transit_problem(
    read: int, size: int, md5_hex: str | None, etag: str, encrypted: bool, said_by: str = "the listing"
) -> str:
    """Why the bytes read are not the object asked for ("" when nothing says they are not).

    `proof.in_transit` decides: the length `said_by` gave, and the MD5 against
    the ETag where that can be an MD5 (not under SSE-KMS or SSE-C, `encrypted`).
    """
    if read != size:
        return f"read {read} bytes, {said_by} says {size}"
    p = proof.in_transit(read, size, md5_hex, etag, encrypted)
    return p.why if p.mismatch else ""
