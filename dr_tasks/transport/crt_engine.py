"""The awscrt engine's bulk operations: exact-version downloads, server-side copies, small cross-endpoint copies.

Each is a `start` (send one request for a job) and a `finish` (check what
came back: done, failed, or sent again) driven by `CrtClient._drive`, on the
caller's thread. The checks are the boto3 engine's (`checks`), and a job is
sent again up to the client's `body_attempts` in all.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from ..errors import DrError
from . import checks, parts
from .crt_client import Completions, CrtClient, _Call, _parse_copy_result
from .errors import S3Error, error_hint
from .jobs import CopyJob, GetJob, ServerCopyJob, SourceGrew, WriteFailed
from .model import StreamedObject

T = TypeVar("T")

_Outcome = tuple[Any, Any]


class BulkS3(CrtClient):
    """An awscrt client with the bulk operations the engine (engine.py) hands it."""

    # ------------------------------------------------------------------ restore
    def download_versions(self, jobs: Iterable[GetJob[T]]) -> Iterator[tuple[GetJob[T], str | DrError]]:
        """Fetch each job's exact version into its `dest`; yield (job, SHA-256 hex) or (job, error).

        The same checks as `S3.download_version`: the size the listing gave,
        the MD5 where the ETag is one, the version id the server sent.
        """
        done = Completions()
        # File creation is system time that can be long (ext4 searching for a
        # free inode right after a mass delete; bench/README.md, finding 15): a few
        # threads do it, off the GIL, while the requests go on.
        writers = ThreadPoolExecutor(max_workers=self.config.writers, thread_name_prefix="dr-write")
        try:
            yield from self._drive(
                jobs,
                done,
                lambda job, attempt: self._start_get(job, attempt, done),
                lambda call: self._finish_get(call, done, writers),
            )
        finally:
            writers.shutdown(wait=True)

    def _start_get(self, job: GetJob[Any], attempt: int, done: Completions) -> _Call:
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
        self._submit(call, done, self._crt_s3.S3RequestType.GET_OBJECT, request, "GetObject", dest)
        return call

    @staticmethod
    def _write(call: _Call, data: bytes, done: Completions) -> None:
        job: GetJob[Any] = call.job
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

    @staticmethod
    def _written(call: _Call) -> _Outcome:
        job: GetJob[Any] = call.job
        if call.write_error is not None:
            return job, WriteFailed(job, call.write_error)
        if call.error is not None:
            return job, DrError(
                f"cannot write {job.key}: {type(call.error).__name__}: {call.error}",
                "nothing was published; run the same command again, and report this if it persists",
            )
        return job, call.sha.hexdigest()

    def _finish_get(self, call: _Call, done: Completions, writers: ThreadPoolExecutor) -> _Outcome | None:
        job: GetJob[Any] = call.job
        if call.phase == "written":
            return self._written(call)
        if call.error is None and not job.in_memory:
            try:
                _hash_file(job.dest, call)
            except OSError as err:
                call.write_error = err
        if call.write_error is not None:
            return job, WriteFailed(job, call.write_error)
        what = f"{job.key} (version {job.version_id})"
        if call.error is not None:
            failure, transient = self._failure("GetObject", job.bucket, what, call)
            if not transient:
                return job, failure
            problem = failure.message
        else:
            wrong = checks.wrong_version(job.version_id, call.headers.get("x-amz-version-id"))
            if wrong:
                return job, S3Error("GetObject", job.bucket, job.key, wrong)
            encrypted = checks.md5_hidden_by_headers(call.headers)
            problem = checks.transit_problem(call.size, job.size, call.md5.hexdigest(), job.etag, encrypted)
            if not problem and parts.applies(job.etag, encrypted):
                problem = self._parts_problem(call)
            if not problem:
                if not job.in_memory:
                    return job, call.sha.hexdigest()
                writers.submit(self._write, call, b"".join(call.buf), done)
                return None  # its outcome comes back through `done` once written
        return self._again(call, S3Error("GetObject", job.bucket, what, problem), done)

    def _parts_problem(self, call: _Call) -> str:
        """Why the bytes fetched are not proven by their multipart ETag ("" when they are)."""
        job: GetJob[Any] = call.job
        if job.in_memory:
            data = b"".join(call.buf)
            read: Any = lambda: [data]  # noqa: E731
        else:
            read = parts.file_chunks(job.dest)
        p = parts.prove_version(self.s3, job.bucket, job.obj, read)
        return "" if p.proven else p.why

    def _again(self, call: _Call, err: S3Error, done: Completions) -> _Outcome | None:
        """Send `call`'s job again, or, past the attempts, give up with `err` (naming the attempts made)."""
        attempts = self.config.body_attempts
        if call.attempt >= attempts:
            return call.job, S3Error(err.operation, err.bucket, err.key, f"{err.detail} ({attempts} tries)", err.hint)
        if call.phase == "copy":
            self._start_copy(call.job, call.attempt + 1, done)
        else:
            self._start_get(call.job, call.attempt + 1, done)
        return None

    # ------------------------------------------------------------------ snapshot, rollback
    def copy_versions(
        self, jobs: Iterable[ServerCopyJob[T]]
    ) -> Generator[tuple[ServerCopyJob[T], str | DrError], None, None]:
        """CopyObject each job's exact version to its `dst_key`; yield (job, the copy's ETag) or (job, error).

        The copies are server-side, so they cost the client one small request
        each; botocore's Python per request was as much CPU as the server's
        own work on a copy, on cores the two share. A 200 counts only with a
        CopyObjectResult carrying an ETag: the rule botocore applies on the
        classic path (an <Error> body or one that is no XML is retried).
        """
        done = Completions()
        yield from self._drive(
            jobs, done, lambda job, attempt: self._start_copy(job, attempt, done), lambda c: self._finish_copy(c, done)
        )

    def _start_copy(self, job: ServerCopyJob[Any], attempt: int, done: Completions) -> _Call:
        call = _Call(job, attempt, phase="copy")
        source = "/" + quote(job.src_bucket) + "/" + quote(job.src_key, safe="/~")
        if job.version_id:
            source += "?versionId=" + quote(job.version_id, safe="")
        request = self._request("PUT", job.dst_bucket, job.dst_key, headers=[("x-amz-copy-source", source)], body=b"")
        self._submit(call, done, self._crt_s3.S3RequestType.DEFAULT, request, "CopyObject")
        return call

    def _finish_copy(self, call: _Call, done: Completions) -> _Outcome | None:
        job: ServerCopyJob[Any] = call.job
        where = f"{job.dst_key} (from {job.src_key})"
        if call.error is not None:
            err, transient = self._failure("CopyObject", job.dst_bucket, where, call)
            if not transient:
                return job, err
            return self._again_plain(call, err, done)
        # A copy can fail after its 200 was sent: the error is then the body.
        etag, code, message = _parse_copy_result(b"".join(call.buf))
        if etag:
            return job, etag
        detail = f"{code} (HTTP 200): {message}".rstrip(": ")
        return self._again_plain(
            call, S3Error("CopyObject", job.dst_bucket, where, detail, error_hint(code, self._section)), done
        )

    def _again_plain(self, call: _Call, err: S3Error, done: Completions) -> _Outcome | None:
        """Send a copy again, or, past the attempts, give up with `err` as it is."""
        if call.attempt >= self.config.body_attempts:
            return call.job, err
        self._start_copy(call.job, call.attempt + 1, done)
        return None

    # ------------------------------------------------------------------ backup, recover
    def copy_small_from(
        self, src: BulkS3, jobs: Iterable[CopyJob[T]]
    ) -> Iterator[tuple[CopyJob[T], StreamedObject | DrError]]:
        """Copy small objects from `src` (another endpoint) to here: GET into memory, then PUT with its MD5.

        Content-Type and user metadata travel with the bytes; the destination
        checks Content-MD5, and the bytes read are checked (`checks`) before
        anything is written.
        """
        done = Completions()
        yield from self._drive(
            jobs,
            done,
            lambda job, attempt: self._start_small(src, job, attempt, done),
            lambda call: self._finish_small(src, call, done),
        )

    def _start_small(self, src: BulkS3, job: CopyJob[Any], attempt: int, done: Completions) -> _Call:
        # Listed as small, read whole into memory: capped, so an object
        # replaced by a big one since the listing is never buffered whole.
        call = _Call(job, attempt, cap=self.config.small_object)
        request = src._request("GET", job.src_bucket, job.src_key)
        src._submit(call, done, self._crt_s3.S3RequestType.GET_OBJECT, request, "GetObject")
        return call

    def _put_small(self, call: _Call, data: bytes, done: Completions) -> None:
        job: CopyJob[Any] = call.job
        md5_b64 = base64.b64encode(call.md5.digest()).decode()
        headers = [("Content-MD5", md5_b64)]
        for name, value in call.headers.items():
            if name == "content-type" or name.startswith("x-amz-meta-"):
                headers.append((name, value))
        nxt = _Call(job, call.attempt, phase="put", size=len(data))
        nxt.src_etag = call.headers.get("etag", "").strip('"')
        nxt.md5 = call.md5
        request = self._request("PUT", job.dst_bucket, job.dst_key, headers=headers, body=data)
        self._submit(nxt, done, self._crt_s3.S3RequestType.PUT_OBJECT, request, "PutObject")

    def _finish_small(self, src: BulkS3, call: _Call, done: Completions) -> _Outcome | None:
        job: CopyJob[Any] = call.job
        if call.phase == "put":
            # awscrt retried it already; a refusal here is the destination's answer.
            if call.error is not None:
                err, _ = self._failure("PutObject", job.dst_bucket, job.dst_key, call)
                return job, err
            dst_etag = call.headers.get("etag", "").strip('"')
            return job, StreamedObject(call.size, call.src_etag, dst_etag, call.md5.hexdigest())
        if call.grown:
            return job, SourceGrew(job.src_bucket, job.src_key)
        if call.error is not None:
            err, transient = src._failure("GetObject", job.src_bucket, job.src_key, call)
            if not transient or call.attempt >= self.config.body_attempts:
                return job, err
            self._start_small(src, job, call.attempt + 1, done)
            return None
        data = b"".join(call.buf)
        expected = call.headers.get("content-length", "")
        problem = checks.transit_problem(
            len(data),
            int(expected) if expected.isdigit() else len(data),
            call.md5.hexdigest(),
            call.headers.get("etag", ""),
            checks.md5_hidden_by_headers(call.headers),
            "its Content-Length",
        )
        if problem:
            if call.attempt >= self.config.body_attempts:
                why = f"{problem} ({self.config.body_attempts} tries)"
                return job, S3Error("GetObject", job.src_bucket, job.src_key, why)
            self._start_small(src, job, call.attempt + 1, done)
            return None
        self._put_small(call, data, done)
        return None


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


def _hash_file(path: Path, call: _Call) -> None:
    """MD5 (for the ETag check), SHA-256 (for the receipt) and size of what awscrt wrote."""
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            call.md5.update(chunk)
            call.sha.update(chunk)
            call.size += len(chunk)
