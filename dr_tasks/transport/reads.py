"""Object reads, and the transport's one body-retry helper (`read_with_retries`).

botocore retries requests, not the reading of their bodies: a body that
breaks off part-way (a reset, a stall, fewer bytes than its Content-Length)
or fails its check (`checks.transit_problem`) surfaces after the call
returned, so the object is fetched again here, from the start, up to the
client's `body_attempts` in all. Every GET of the boto3 engine goes through it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from . import checks, parts
from .client import S3Base
from .errors import S3Error
from .model import ObjectDigest, ObjectVersion

R = TypeVar("R")

# Error codes that mean "no such key" (GetObject's own, and a HEAD-style 404).
MISSING_KEY = ("NoSuchKey", "404", "NotFound")
MISSING_VERSION = ("NoSuchKey", "NoSuchVersion", "404", "NotFound")
_CHUNK = 1024 * 1024


class ReadAgain(Exception):
    """The body read is not the object asked for (cut short, wrong MD5): fetch it again."""


def read_with_retries(
    s3: S3Base,
    kwargs: dict[str, Any],
    consume: Callable[[dict[str, Any]], R],
    where: str | None = None,
    missing: tuple[str, ...] = (),
    hint: str | None = None,
) -> R | None:
    """GetObject with `kwargs` and hand the response to `consume`; fetch again when its body breaks.

    `consume` reads resp["Body"] (closed here after it) and raises `ReadAgain`
    when what it read is not the object; a `BotoCoreError` while it reads is
    a body that broke off. None when the server's error code is in `missing`.
    """
    bucket = kwargs["Bucket"]
    where = where or kwargs["Key"]
    attempts = max(1, s3.config.body_attempts)
    why = ""
    for _ in range(attempts):
        try:
            resp = s3.client.get_object(**kwargs)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in missing:
                return None
            raise s3._fail("GetObject", bucket, where, err) from None
        except BotoCoreError as err:
            raise s3._fail("GetObject", bucket, where, err) from None
        body = resp["Body"]
        try:
            return consume(resp)
        except BotoCoreError as err:
            why = f"the stream broke: {type(err).__name__}: {err}"
        except ReadAgain as err:
            why = str(err)
        finally:
            body.close()
    raise S3Error("GetObject", bucket, where, f"{why} ({attempts} tries)", hint)


class ReadsMixin(S3Base):
    """The read operations of `S3`."""

    def _read_whole(self, kwargs: dict[str, Any], missing: tuple[str, ...] = ()) -> bytes | None:
        """GetObject and read the whole body; None when the error code is in `missing`."""
        return read_with_retries(self, kwargs, lambda resp: bytes(resp["Body"].read()), missing=missing)

    def get_bytes(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        data = self._read_whole({"Bucket": bucket, "Key": key, **checks.version_query(version_id)})
        assert data is not None  # no error code counts as missing here
        return data

    def get_bytes_or_none(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        return self._read_whole({"Bucket": bucket, "Key": key}, MISSING_KEY)

    def get_version_or_none(self, bucket: str, key: str, version_id: str | None) -> bytes | None:
        """One version's bytes, or None when it (or the key) no longer exists."""
        return self._read_whole({"Bucket": bucket, "Key": key, **checks.version_query(version_id)}, MISSING_VERSION)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self._fail("HeadObject", bucket, key, err) from None
        except BotoCoreError as err:
            raise self._fail("HeadObject", bucket, key, err) from None

    def digest(self, bucket: str, key: str, version_id: str | None = None) -> ObjectDigest:
        """Read an object through once and hash it (MD5 and SHA-256), 1 MiB at a time.

        A body that breaks off is read again (`read_with_retries`): `dr.verify
        --deep` would otherwise call a snapshot object unreadable for a hiccup
        on the way.
        """

        def consume(resp: dict[str, Any]) -> ObjectDigest:
            md5, sha, size = hashlib.md5(), hashlib.sha256(), 0
            for chunk in resp["Body"].iter_chunks(_CHUNK):
                md5.update(chunk)
                sha.update(chunk)
                size += len(chunk)
            return ObjectDigest(size, str(resp.get("ETag", "")).strip('"'), md5.hexdigest(), sha.hexdigest())

        got = read_with_retries(
            self,
            {"Bucket": bucket, "Key": key, **checks.version_query(version_id)},
            consume,
            hint="check the network to the endpoint; run the same command again",
        )
        assert got is not None
        return got

    def download_version(self, bucket: str, obj: ObjectVersion, dest: Path) -> str:
        """Stream exactly `obj` (its version id) into `dest`, check it, and return its SHA-256 (hex).

        The bytes must match the listing's size, and its MD5 where the ETag is
        one (`checks.transit_problem`), or the multipart ETag recomputed from
        them where it is that (`parts`); a body cut short or damaged on the way
        is fetched again from the start. `dest` is the caller's temp file.
        """
        if obj.size == 0:
            # The listing names an immutable empty version: no GET needed.
            dest.write_bytes(b"")
            return hashlib.sha256(b"").hexdigest()
        where = f"{obj.key} (version {obj.version_id})"

        def consume(resp: dict[str, Any]) -> str:
            md5, sha, size = hashlib.md5(), hashlib.sha256(), 0
            with open(dest, "wb") as fh:
                for chunk in resp["Body"].iter_chunks(_CHUNK):
                    md5.update(chunk)
                    sha.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            wrong = checks.wrong_version(obj.version_id, resp.get("VersionId"))
            if wrong:
                raise S3Error("GetObject", bucket, obj.key, wrong)
            encrypted = checks.md5_hidden(resp.get("ServerSideEncryption"), resp.get("SSECustomerAlgorithm"))
            problem = checks.transit_problem(size, obj.size, md5.hexdigest(), obj.etag, encrypted)
            if problem:
                raise ReadAgain(problem)
            if parts.applies(obj.etag, encrypted):
                fh_proof = parts.prove_version(self, bucket, obj, parts.file_chunks(dest))
                if not fh_proof.proven:
                    raise ReadAgain(fh_proof.why)
            return sha.hexdigest()

        kwargs = {"Bucket": bucket, "Key": obj.key, **checks.version_query(obj.version_id)}
        sha = read_with_retries(self, kwargs, consume, where)
        assert sha is not None
        return sha
