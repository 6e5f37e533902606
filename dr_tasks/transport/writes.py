"""Writes: bucket setup, server-side copies, puts, uploads, deletes, and the lease's conditional create."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import proof
from . import checks
from .client import S3Base
from .errors import S3Error
from .model import ObjectVersion

if TYPE_CHECKING:
    from ..guard import UploadPermit


class WritesMixin(S3Base):
    """The write operations of `S3`."""

    def versioning(self, bucket: str) -> str | None:
        """'Enabled', 'Suspended' or None (never enabled)."""
        r = self.call("GetBucketVersioning", bucket, None, self.client.get_bucket_versioning, Bucket=bucket)
        return r.get("Status")

    def create_bucket(self, bucket: str, versioned: bool = True) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.call("CreateBucket", bucket, None, self.client.create_bucket, **kwargs)
        if versioned:
            self.enable_versioning(bucket)

    def enable_versioning(self, bucket: str) -> None:
        self.call(
            "PutBucketVersioning",
            bucket,
            None,
            self.client.put_bucket_versioning,
            Bucket=bucket,
            VersioningConfiguration={"Status": "Enabled"},
        )

    def lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules as the server reads them back; [] when it has none."""
        try:
            r = self.client.get_bucket_lifecycle_configuration(Bucket=bucket)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return []
            raise self._fail("GetBucketLifecycleConfiguration", bucket, None, err) from None
        except BotoCoreError as err:
            raise self._fail("GetBucketLifecycleConfiguration", bucket, None, err) from None
        return list(r.get("Rules", []))

    def put_lifecycle_rules(self, bucket: str, rules: list[dict[str, Any]]) -> None:
        """Replace the whole lifecycle configuration (S3 has no per-rule put)."""
        self.call(
            "PutBucketLifecycleConfiguration",
            bucket,
            None,
            self.client.put_bucket_lifecycle_configuration,
            Bucket=bucket,
            LifecycleConfiguration={"Rules": rules},
        )

    def copy(self, src_bucket: str, src: ObjectVersion, dst_bucket: str, dst_key: str) -> str:
        """Server-side copy of exactly `src` (its version id when it has one); the copy's ETag (unquoted).

        The ETag is the one the server gave the copy: a snapshot records it, so
        a later check can accept the copy by exact equality (see `proof`).
        """
        source = {"Bucket": src_bucket, "Key": src.key, **checks.version_query(src.version_id)}
        try:
            if src.size <= self.config.max_single_copy:
                r = self.client.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource=source)
                etag = str(r.get("CopyObjectResult", {}).get("ETag") or "")
            else:
                # The transfer manager splits it into UploadPartCopy requests
                # and keeps the completion's answer to itself.
                with self._transfer_manager(self.config.max_single_copy, self.config.copy_part_size) as manager:
                    manager.copy(copy_source=source, bucket=dst_bucket, key=dst_key).result()
                etag = str(self.client.head_object(Bucket=dst_bucket, Key=dst_key).get("ETag") or "")
        except (ClientError, BotoCoreError) as err:
            raise self._fail("CopyObject", dst_bucket, f"{dst_key} (from {src.key})", err) from None
        if not proof.plain(etag):
            # botocore retried a 200 whose body was an <Error> or no XML; one
            # that parsed with no CopyObjectResult is no evidence of a copy either.
            raise S3Error(
                "CopyObject",
                dst_bucket,
                f"{dst_key} (from {src.key})",
                "the server answered 200 without a CopyObjectResult ETag",
                "run the same command again; if it persists, the store or a proxy in front of it mangles copies",
            )
        return proof.plain(etag)

    def put_bytes(
        self, bucket: str, key: str, data: bytes | IO[bytes], content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        return self.call(
            "PutObject",
            bucket,
            key,
            self.client.put_object,
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )

    def upload_file(self, permit: UploadPermit, bucket: str, key: str) -> None:
        """Upload a local file. Takes only a guard-issued permit, so no path skips the guard."""
        try:
            with self._transfer_manager() as manager:
                manager.upload(str(permit.path), bucket, key).result()
        except (ClientError, BotoCoreError) as err:
            raise self._fail("PutObject", bucket, key, err) from None

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> list[S3Error]:
        """Delete keys (delete markers on a versioned bucket), 1,000 per request."""
        errors: list[S3Error] = []
        batch: list[str] = []

        def flush() -> None:
            if not batch:
                return
            r = self.call(
                "DeleteObjects",
                bucket,
                batch[0],
                self.client.delete_objects,
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            for e in r.get("Errors", []):
                errors.append(S3Error("DeleteObject", bucket, e.get("Key"), f"{e.get('Code')}: {e.get('Message')}"))
            batch.clear()

        for k in keys:
            batch.append(k)
            if len(batch) == 1000:
                flush()
        flush()
        return errors

    def delete_versions(self, bucket: str, entries: Iterable[tuple[str, str | None]]) -> list[S3Error]:
        """Permanently delete (key, version id) pairs, 1,000 per request."""
        errors: list[S3Error] = []
        objs: list[dict[str, str]] = []

        def flush() -> None:
            if not objs:
                return
            r = self.call(
                "DeleteObjects",
                bucket,
                objs[0]["Key"],
                self.client.delete_objects,
                Bucket=bucket,
                Delete={"Objects": list(objs), "Quiet": True},
            )
            for e in r.get("Errors", []):
                errors.append(S3Error("DeleteObject", bucket, e.get("Key"), f"{e.get('Code')}: {e.get('Message')}"))
            objs.clear()

        for key, vid in entries:
            obj = {"Key": key}
            if vid:
                obj["VersionId"] = vid
            objs.append(obj)
            if len(objs) == 1000:
                flush()
        flush()
        return errors

    # ------------------------------------------------------------------ lock
    # The lease (dr_tasks/lock.py) needs three primitives: a conditional create,
    # every version of exactly one key together with the server's clock (so
    # staleness never depends on the operator's clock), and a GET of one
    # version that tolerates the version having just been deleted.
    def put_if_absent(self, bucket: str, key: str, data: bytes) -> tuple[str, str | None, bool]:
        """PutObject with `If-None-Match: *`.

        Returns ("written", version id or None, retried), ("exists", None,
        retried) when the server refused because the key exists (412, or 409
        for a concurrent conditional write), or ("unsupported", None, retried)
        when it rejects the header itself (501). `retried` says botocore sent
        the request more than once (an earlier attempt may have written a
        version whose id was never seen). A store may also ignore the header
        and answer 200: the caller has to find that out (see lock.py).
        """
        try:
            r = self.client.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType="application/json", IfNoneMatch="*"
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            meta = err.response.get("ResponseMetadata", {})
            status, retried = meta.get("HTTPStatusCode"), bool(meta.get("RetryAttempts"))
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return "exists", None, retried
            if code == "NotImplemented" or status == 501:
                return "unsupported", None, retried
            raise self._fail("PutObject", bucket, key, err) from None
        except BotoCoreError as err:
            raise self._fail("PutObject", bucket, key, err) from None
        return "written", r.get("VersionId"), bool(r.get("ResponseMetadata", {}).get("RetryAttempts"))
