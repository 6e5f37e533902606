"""Bulk per-object GETs and PUTs through awscrt, the AWS Common Runtime's S3 client.

botocore spends about 0.8 ms of Python CPU on every request (serialise,
sign, run the event hooks, parse) — as much as Ceph RGW spends answering it —
so a restore of thousands of small files was bound by our own process, and a
Go tool (rclone) restored 2.8x faster. awscrt does the HTTP, the signing, the
retries and the byte moving in C on its own event-loop threads; Python sees
one callback per response. Only the per-object bulk requests go through it
(restore's GETs, backup's small copies, the server-side copies of snapshot
and rollback): listings, big copies, deletes, the index,
the lease and every error message's wording stay with boto3 in `s3.py`, which
also supplies this module's endpoint, region and credentials.

Everything here is plain S3 over HTTP(S) with SigV4, so it works against the
same servers boto3 does: path-style on custom endpoints, `AWS_CA_BUNDLE` for
private CAs, the same retry budget (`AWS_MAX_ATTEMPTS`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import queue
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

from . import internals, proof
from .errors import DrError
from .s3 import (
    S3,
    S3Error,
    download_problem,
    error_hint,
    max_attempts,
    note_request,
    unreachable_hint,
)

T = TypeVar("T")

# A body that failed our own checks (short, wrong MD5) or a connection that
# broke after awscrt's retries is fetched again from the start this often.
ATTEMPTS = 3
# Threads that create and write the small files of a restore.
WRITERS = 4
# The in-memory bound: a backup copies objects up to this size through awscrt
# (bigger ones take boto3's streaming path), and a restore checks versions up
# to this size in memory before writing them; either way what is buffered
# stays small however many requests are in flight.
SMALL_OBJECT = 1024 * 1024


def available() -> bool:
    try:
        import awscrt.s3  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class GetJob(Generic[T]):
    """One object version to fetch into `dest`, with `mtime` (seconds) when given.

    A version up to SMALL_OBJECT is read into memory, checked, and only then
    written to `dest` (so `dest` may be the final name); a bigger one is
    written by awscrt as it arrives and checked after (so `dest` should be a
    temp name the caller renames).
    """

    tag: T
    bucket: str
    key: str
    version_id: str | None
    size: int
    etag: str
    dest: Path
    mtime: float | None = None

    @property
    def in_memory(self) -> bool:
        return self.size <= SMALL_OBJECT


@dataclass
class CopyJob(Generic[T]):
    """One small object to copy from a source endpoint to `dst_key` here (read into memory, then PUT)."""

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


@dataclass(frozen=True)
class Copied:
    size: int
    src_etag: str
    dst_etag: str


@dataclass
class _Call:
    """What the callbacks of one request collect, read by the main thread once it is done."""

    job: Any
    attempt: int
    phase: str = "get"
    buf: list[bytes] = field(default_factory=list)
    md5: Any = field(default_factory=hashlib.md5)
    sha: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    write_error: OSError | None = None
    error: Exception | None = None
    error_status: int = 0
    error_body: bytes = b""
    src_etag: str = ""
    keep: Any = None  # the awscrt request: must outlive its callbacks
    # Bytes this call may hold in memory; past it the object is not what the
    # listing said (it grew since), `grown` is set and the request cancelled.
    cap: int | None = None
    grown: bool = False

    def on_headers(self, status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
        self.status = status_code
        self.headers = {k.lower(): v for k, v in headers}
        length = self.headers.get("content-length", "")
        if self.cap is not None and status_code < 300 and length.isdigit() and int(length) > self.cap:
            self._overflow()

    def on_body(self, chunk: bytes, offset: int, **_: Any) -> None:
        # Only small copies read into memory; downloads go straight to a file.
        if self.grown or (self.cap is not None and self.size + len(chunk) > self.cap):
            self._overflow()
            return
        self.buf.append(bytes(chunk))
        self.md5.update(chunk)
        self.size += len(chunk)

    def _overflow(self) -> None:
        self.grown = True
        self.buf.clear()
        request = self.keep
        if request is not None:  # None only in the instant before make_request returns
            request.cancel()


class BulkS3:
    """An awscrt S3 client for the same endpoint and credentials as an `S3`."""

    def __init__(self, s3: S3, concurrency: int) -> None:
        from awscrt import auth
        from awscrt import io as crt_io
        from awscrt import s3 as crt_s3

        self.concurrency = max(1, concurrency)
        url = urlsplit(s3.client.meta.endpoint_url)
        self._netloc = url.netloc
        self._base = url.path.rstrip("/")
        self._path_style = bool(s3.endpoint.endpoint_url)
        # Which config section's keys a hint names: `dr` or `dr.backup`.
        self._section = s3.endpoint.section
        region = s3.client.meta.region_name or "us-east-1"
        creds = s3.credentials()

        if hasattr(creds, "refresh_needed"):
            # Refreshable (a role, SSO): awscrt asks Python before each signing.
            def current() -> Any:
                frozen = creds.get_frozen_credentials()
                return auth.AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

            provider = auth.AwsCredentialsProvider.new_delegate(current)
        else:
            # Static keys: signing stays in C, no trip through the GIL per request.
            frozen = creds.get_frozen_credentials()
            provider = auth.AwsCredentialsProvider.new_static(frozen.access_key, frozen.secret_key, frozen.token)
        tls_options = None
        if url.scheme == "https":
            opts = crt_io.TlsContextOptions()
            ca = os.environ.get("AWS_CA_BUNDLE")  # the variable botocore honours too
            if ca:
                opts.override_default_trust_store_from_path(None, ca)
            tls_options = crt_io.ClientTlsContext(opts).new_connection_options()
        self._crt_s3 = crt_s3
        self._client = crt_s3.S3Client(
            region=region,
            tls_mode=crt_s3.S3RequestTlsMode.ENABLED if tls_options else crt_s3.S3RequestTlsMode.DISABLED,
            tls_connection_options=tls_options,
            signing_config=crt_s3.create_default_s3_signing_config(region=region, credential_provider=provider),
            max_active_connections_override=self.concurrency,
            retry_config=crt_s3.S3RetryConfig(max_retries=max(0, max_attempts() - 1)),
            connect_timeout_ms=10_000,
            # Bounds awscrt's own part buffers (it splits big GETs into ranged parts).
            memory_limit=1024 * 1024 * 1024,
        )

    # ------------------------------------------------------------------ requests
    def _request(
        self,
        method: str,
        bucket: str,
        key: str,
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Any:
        from awscrt.http import HttpHeaders, HttpRequest

        virtual = not self._path_style and "." not in bucket and bucket == bucket.lower()
        host = f"{bucket}.{self._netloc}" if virtual else self._netloc
        path = self._base + ("" if virtual else "/" + quote(bucket)) + "/" + quote(key, safe="/~")
        h = HttpHeaders([("Host", host), *headers])
        stream = None
        if body is not None:
            h.add("Content-Length", str(len(body)))
            stream = io.BytesIO(body)
        return HttpRequest(method, path + query, h, stream)

    def _submit(
        self,
        call: _Call,
        done: queue.SimpleQueue[_Call],
        request_type: Any,
        request: Any,
        op: str,
        recv_filepath: str | None = None,
    ) -> None:
        def on_done(
            error: Exception | None = None, status_code: int = 0, error_body: bytes | None = None, **_: Any
        ) -> None:
            call.error = error
            call.error_status = status_code or 0
            call.error_body = error_body or b""
            call.keep = None  # the request and its callbacks form a cycle: no need for the collector
            done.put(call)

        note_request(op)
        call.keep = self._client.make_request(
            type=request_type,
            request=request,
            operation_name=op,
            recv_filepath=recv_filepath,
            on_headers=call.on_headers,
            on_body=None if recv_filepath else call.on_body,
            on_done=on_done,
        )

    def _failure(self, op: str, bucket: str, key: str, call: _Call) -> tuple[S3Error, bool]:
        """The error a failed request becomes, and whether fetching again could help."""
        err = call.error
        if isinstance(err, self._crt_s3.S3ResponseError) or call.error_status >= 400:
            status = call.error_status or getattr(err, "status_code", 0)
            code, message = _parse_error(call.error_body)
            code = code or {403: "AccessDenied", 404: "NoSuchKey"}.get(status, "HTTP error")
            detail = f"{code} (HTTP {status}): {message}".rstrip(": ")
            # awscrt already retried 5xx and throttling with backoff; 4xx will not change.
            return S3Error(op, bucket, key, detail, error_hint(code, self._section)), False
        name = getattr(err, "name", type(err).__name__)
        # awscrt reports the retryable statuses by name only, after its own retries.
        known = _RETRIED_STATUS.get(name)
        if known is not None:
            return S3Error(op, bucket, key, known, "run the same command again later, or lower dr.concurrency"), False
        detail = f"{name}: {getattr(err, 'message', err)}"
        hint = unreachable_hint(self._section) + "; run the same command again"
        return S3Error(op, bucket, key, detail, hint), True

    def _drive(
        self,
        jobs: Iterable[Any],
        done: queue.SimpleQueue[_Call],
        start: Callable[[Any, int], _Call | None],
        finish: Callable[[_Call], tuple[Any, Any] | None],
    ) -> Iterator[tuple[Any, Any]]:
        """Keep about 2 x concurrency requests in flight; yield each job's outcome as it is known.

        Completions arrive on `done` from awscrt's threads; all checking, retrying
        and file renaming happens here, on the caller's thread.
        """
        window = self.concurrency * 2
        # Thousands of short-lived requests come and go: keep what is alive now
        # out of the collector's scans (bench/README.md, finding 9).
        with internals.frozen_heap():
            yield from self._pump(jobs, done, start, finish, window)

    @staticmethod
    def _pump(
        jobs: Iterable[Any],
        done: queue.SimpleQueue[_Call],
        start: Callable[[Any, int], _Call | None],
        finish: Callable[[_Call], tuple[Any, Any] | None],
        window: int,
    ) -> Iterator[tuple[Any, Any]]:
        inflight = 0
        try:
            for job in jobs:
                while inflight >= window:
                    completed = done.get()
                    inflight -= 1
                    outcome = finish(completed)
                    if outcome is None:
                        inflight += 1  # the same job went out again (a retry or its next phase)
                    else:
                        yield outcome
                call = start(job, 1)
                if call is None:
                    continue
                inflight += 1
            while inflight:
                completed = done.get()
                inflight -= 1
                outcome = finish(completed)
                if outcome is None:
                    inflight += 1
                else:
                    yield outcome
        except BaseException:
            # Interrupted (a signal, or the consumer stopped): wait for what is
            # in flight, so a cleanup after this sees every write it made.
            while inflight > 0:
                inflight -= 1
                done.get()
            raise

    # ------------------------------------------------------------------ restore
    def download_versions(self, jobs: Iterable[GetJob[T]]) -> Iterator[tuple[GetJob[T], str | DrError]]:
        """Fetch each job's exact version into its `dest`; yield (job, SHA-256 hex) or (job, error).

        The same checks as `S3.download_version`: the size the listing gave,
        the MD5 where the ETag is one, the version id the server sent.
        """
        crt_s3 = self._crt_s3
        done: queue.SimpleQueue[_Call] = queue.SimpleQueue()

        def start(job: GetJob[T], attempt: int) -> _Call:
            call = _Call(job, attempt)
            if job.size == 0:
                # Nothing to fetch: the listing names an immutable empty version.
                # (A ranged GET of an empty object is 416 on RGW, which awscrt
                # does not recognise as "empty".)
                done.put(call)
                return call
            query = ""
            if job.version_id:
                query = "?versionId=" + quote(job.version_id, safe="")
            request = self._request("GET", job.bucket, job.key, query)
            # Small bodies come to Python in one callback and are written once,
            # checked, by the caller's thread: one open per file. awscrt writing
            # them itself cost three opens and a read-back each, and file
            # creation is most of a small restore's system time. Big ones are
            # written by awscrt as they arrive (off the GIL, bounded memory).
            dest = None if job.in_memory else str(job.dest)
            if dest is not None:
                # awscrt reports a path it cannot open as a bare exception with
                # no errno (AWS_ERROR_FILE_INVALID_PATH), raised out of the
                # request: creating the file first gives the real OSError, for
                # this job alone.
                try:
                    os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
                except OSError as err:
                    call.write_error, call.phase = err, "written"
                    done.put(call)
                    return call
            self._submit(call, done, crt_s3.S3RequestType.GET_OBJECT, request, "GetObject", dest)
            return call

        # File creation is system time that can be long (ext4 searching for a
        # free inode right after a mass delete took 0.5 ms a file here): a few
        # threads do it, off the GIL, while the requests go on.
        writers = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="dr-write")

        def write(call: _Call, data: bytes) -> None:
            job: GetJob[T] = call.job
            try:
                _write_file(job.dest, data, job.mtime)
                call.sha.update(data)
            except OSError as err:
                call.write_error = err
            except Exception as err:
                # Whatever it is, the job must come back through `done`: the
                # pump waits for exactly one outcome per request it started.
                call.error = err
            finally:
                call.phase = "written"
                done.put(call)

        def finish(call: _Call) -> tuple[GetJob[T], str | DrError] | None:
            job: GetJob[T] = call.job
            if call.phase == "written":
                if call.write_error is not None:
                    return job, WriteFailed(job, call.write_error)
                if call.error is not None:
                    return job, DrError(
                        f"cannot write {job.key}: {type(call.error).__name__}: {call.error}",
                        "nothing was published; run the same command again, and report this if it persists",
                    )
                return job, call.sha.hexdigest()
            if call.error is None and not job.in_memory:
                try:
                    _hash_file(job.dest, call)
                except OSError as err:
                    call.write_error = err
            what = f"{job.key} (version {job.version_id})"
            if call.write_error is not None:
                return job, WriteFailed(job, call.write_error)
            problem = ""
            if call.error is not None:
                err, transient = self._failure("GetObject", job.bucket, what, call)
                if not transient:
                    return job, err
                problem = err.message
            else:
                got_vid = call.headers.get("x-amz-version-id")
                if job.version_id and job.version_id != "null" and got_vid and got_vid != job.version_id:
                    return job, S3Error(
                        "GetObject",
                        job.bucket,
                        job.key,
                        f"asked for version {job.version_id}, the server sent {got_vid}",
                    )
                encrypted = (
                    call.headers.get("x-amz-server-side-encryption", "").startswith("aws:kms")
                    or "x-amz-server-side-encryption-customer-algorithm" in call.headers
                )
                problem = download_problem(call.size, job.size, call.md5.hexdigest(), job.etag, encrypted)
                if not problem:
                    if not job.in_memory:
                        return job, call.sha.hexdigest()
                    writers.submit(write, call, b"".join(call.buf))
                    return None  # its outcome comes back through `done` once written
            if call.attempt >= ATTEMPTS:
                return job, S3Error("GetObject", job.bucket, what, f"{problem} ({ATTEMPTS} tries)")
            start(job, call.attempt + 1)
            return None

        try:
            yield from self._drive(jobs, done, start, finish)
        finally:
            writers.shutdown(wait=True)

    # ------------------------------------------------------------------ snapshot, rollback
    def copy_versions(self, jobs: Iterable[ServerCopyJob[T]]) -> Iterator[tuple[ServerCopyJob[T], str | DrError]]:
        """CopyObject each job's exact version to its `dst_key`; yield (job, the copy's ETag) or (job, error).

        The copies are server-side, so they cost the client one small request
        each; botocore's Python per request was as much CPU as the server's
        own work on a copy, on cores the two share. A 200 counts only with a
        CopyObjectResult carrying an ETag: the rule botocore applies on the
        classic path (an <Error> body or one that is no XML is retried).
        """
        crt_s3 = self._crt_s3
        done: queue.SimpleQueue[_Call] = queue.SimpleQueue()

        def start(job: ServerCopyJob[T], attempt: int) -> _Call:
            call = _Call(job, attempt, phase="copy")
            source = "/" + quote(job.src_bucket) + "/" + quote(job.src_key, safe="/~")
            if job.version_id:
                source += "?versionId=" + quote(job.version_id, safe="")
            request = self._request(
                "PUT", job.dst_bucket, job.dst_key, headers=[("x-amz-copy-source", source)], body=b""
            )
            self._submit(call, done, crt_s3.S3RequestType.DEFAULT, request, "CopyObject")
            return call

        def finish(call: _Call) -> tuple[ServerCopyJob[T], str | DrError] | None:
            job: ServerCopyJob[T] = call.job
            where = f"{job.dst_key} (from {job.src_key})"
            if call.error is not None:
                err, transient = self._failure("CopyObject", job.dst_bucket, where, call)
            else:
                # A copy can fail after its 200 was sent: the error is then the body.
                etag, code, message = _parse_copy_result(b"".join(call.buf))
                if etag:
                    return job, etag
                err = S3Error(
                    "CopyObject",
                    job.dst_bucket,
                    where,
                    f"{code} (HTTP 200): {message}".rstrip(": "),
                    error_hint(code, self._section),
                )
                transient = True
            if not transient or call.attempt >= ATTEMPTS:
                return job, err
            start(job, call.attempt + 1)
            return None

        yield from self._drive(jobs, done, start, finish)

    # ------------------------------------------------------------------ backup
    def copy_small_from(self, src: BulkS3, jobs: Iterable[CopyJob[T]]) -> Iterator[tuple[CopyJob[T], Copied | DrError]]:
        """Copy small objects from `src` (another endpoint) to here: GET into memory, then PUT with its MD5.

        Content-Type and user metadata travel with the bytes; the destination
        checks Content-MD5, and a single-part source ETag is checked against
        the bytes read before anything is written.
        """
        crt_s3 = self._crt_s3
        done: queue.SimpleQueue[_Call] = queue.SimpleQueue()

        def start(job: CopyJob[T], attempt: int) -> _Call:
            # Listed as small, read whole into memory: capped, so an object
            # replaced by a big one since the listing is never buffered whole.
            call = _Call(job, attempt, cap=SMALL_OBJECT)
            request = src._request("GET", job.src_bucket, job.src_key)
            src._submit(call, done, crt_s3.S3RequestType.GET_OBJECT, request, "GetObject")
            return call

        def put(call: _Call, data: bytes) -> None:
            job: CopyJob[T] = call.job
            md5_b64 = base64.b64encode(call.md5.digest()).decode()
            headers = [("Content-MD5", md5_b64)]
            for name, value in call.headers.items():
                if name == "content-type" or name.startswith("x-amz-meta-"):
                    headers.append((name, value))
            nxt = _Call(job, call.attempt, phase="put", size=len(data))
            nxt.src_etag = call.headers.get("etag", "").strip('"')
            request = self._request("PUT", job.dst_bucket, job.dst_key, headers=headers, body=data)
            self._submit(nxt, done, crt_s3.S3RequestType.PUT_OBJECT, request, "PutObject")

        def finish(call: _Call) -> tuple[CopyJob[T], Copied | DrError] | None:
            job: CopyJob[T] = call.job
            if call.phase == "get":
                where = (job.src_bucket, job.src_key)
                if call.grown:
                    return job, SourceGrew(job.src_bucket, job.src_key)
                if call.error is not None:
                    err, transient = src._failure("GetObject", *where, call)
                    if not transient or call.attempt >= ATTEMPTS:
                        return job, err
                    start(job, call.attempt + 1)
                    return None
                data = b"".join(call.buf)
                src_etag = call.headers.get("etag", "").strip('"')
                expected = call.headers.get("content-length")
                short = expected is not None and expected.isdigit() and int(expected) != len(data)
                bad_md5 = proof.in_transit(len(data), len(data), call.md5.hexdigest(), src_etag).mismatch
                if short or bad_md5:
                    if call.attempt >= ATTEMPTS:
                        why = "was cut short" if short else f"hash to {call.md5.hexdigest()}, the ETag says {src_etag}"
                        return job, S3Error("GetObject", *where, f"the bytes read {why} ({ATTEMPTS} tries)")
                    start(job, call.attempt + 1)
                    return None
                put(call, data)
                return None
            # phase "put": awscrt retried it already; a refusal here is the destination's answer.
            if call.error is not None:
                err, _ = self._failure("PutObject", job.dst_bucket, job.dst_key, call)
                return job, err
            return job, Copied(call.size, call.src_etag, call.headers.get("etag", "").strip('"'))

        yield from self._drive(jobs, done, start, finish)


def _write_file(path: Path, data: bytes, mtime: float | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


class SourceGrew(DrError):
    """A small copy's source is bigger than SMALL_OBJECT now (replaced since the listing).

    Not a failure: the caller copies it again through its streaming path.
    """

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(
            f"s3://{bucket}/{key} grew past {SMALL_OBJECT} bytes since it was listed", "run the same command again"
        )


class WriteFailed(DrError):
    """A downloaded version that could not be written (or read back); `error` says why.

    The caller knows the name the user sees (the temp file here may not be
    it), so it words the message: see restore's `_write_error`.
    """

    def __init__(self, job: GetJob[Any], error: OSError) -> None:
        super().__init__(f"cannot write {job.key}: {error.strerror}", "check disk space and permissions")
        self.error = error


def _hash_file(path: Path, call: _Call) -> None:
    """MD5 (for the ETag check), SHA-256 (for the receipt) and size of what awscrt wrote."""
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            call.md5.update(chunk)
            call.sha.update(chunk)
            call.size += len(chunk)


_RETRIED_STATUS = {
    "AWS_ERROR_S3_SLOW_DOWN": "SlowDown (HTTP 503): the server kept throttling",
    "AWS_ERROR_S3_INTERNAL_ERROR": "InternalError (HTTP 500): the server kept failing",
}


def _parse_error(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an S3 XML error body; empty strings when there is none (HEAD, proxies)."""
    if not body:
        return "", ""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", ""
    code = message = ""
    for el in root:
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "Code":
            code = el.text or ""
        elif tag == "Message":
            message = el.text or ""
    return code, message


def _parse_copy_result(body: bytes) -> tuple[str, str, str]:
    """(ETag, "", "") of a CopyObjectResult; ("", Code, Message) when the body is anything else.

    An <Error> body (S3's way to fail a copy after its 200 was sent), an empty
    or truncated one, or a result without an ETag: none is evidence of a copy.
    """
    try:
        root = ET.fromstring(body) if body else None
    except ET.ParseError:
        return "", "MalformedResponse", f"the body is no XML ({len(body)} bytes)"
    if root is None:
        return "", "MalformedResponse", "an empty body"
    tag = root.tag.rsplit("}", 1)[-1]
    if tag == "Error":
        code, message = _parse_error(body)
        return "", code or "Error", message
    for el in root:
        if el.tag.rsplit("}", 1)[-1] == "ETag" and el.text and el.text.strip().strip('"'):
            return el.text.strip().strip('"').lower(), "", ""
    return "", "MalformedResponse", f"a <{tag}> without an ETag"


_LOCK = threading.Lock()


def bulk_for(s3: S3, concurrency: int) -> BulkS3 | None:
    """The awscrt client for `s3`'s endpoint (made once, kept on `s3`), or None when awscrt is not installed.

    Kept on the S3 object rather than in a module-level table, so it goes (with
    its connections and threads) when the S3 object does.
    """
    if not available():
        return None
    with _LOCK:
        if s3.bulk is None:
            s3.bulk = BulkS3(s3, concurrency)
        return s3.bulk
