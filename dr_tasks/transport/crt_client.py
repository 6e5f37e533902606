"""The awscrt engine's client: requests in C on awscrt's event-loop threads, outcomes handled in Python.

botocore spends as much Python CPU on every request (serialise, sign, run
the event hooks, parse) as Ceph RGW spends answering it, so a restore of
thousands of small files was bound by our own process (bench/README.md,
findings 1 and 15). awscrt does the HTTP, the signing, the
retries and the byte moving in C on its own event-loop threads; Python sees
one callback per response. Only per-object bulk requests go through it (see
engine.py); the botocore `S3` of the same endpoint supplies its endpoint,
region and credentials, and keeps listings, big copies, deletes, the index,
the lease and every error message's wording.

Everything here is plain S3 over HTTP(S) with SigV4, so it works against the
same servers boto3 does: path-style on custom endpoints, `AWS_CA_BUNDLE` for
private CAs, the same retry budget (`TransferConfig.request_attempts`).
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .. import internals
from ..interrupt import shielded
from . import counting
from .client import S3Base
from .errors import S3Error, error_hint, unreachable_hint


def available() -> bool:
    try:
        import awscrt.s3  # noqa: F401
    except ImportError:
        return False
    return True


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


class Completions:
    """Where awscrt's threads hand finished calls to the main thread, counting every one that landed.

    The count is kept by the threads that put, not by the main thread that
    takes: an interrupted run waits until as many calls landed as it sent,
    whatever it had taken when the signal came (see `CrtClient._pump`).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._landed = 0
        self._cv = threading.Condition()

    def put(self, call: _Call) -> None:
        with self._cv:
            self._landed += 1
            self._cv.notify_all()
        self._queue.put(call)

    def get(self) -> _Call:
        return self._queue.get()

    def wait_landed(self, count: int) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self._landed >= count)


class CrtClient:
    """An awscrt S3 client for the same endpoint and credentials as an `S3`."""

    def __init__(self, s3: S3Base, concurrency: int) -> None:
        from awscrt import auth
        from awscrt import io as crt_io
        from awscrt import s3 as crt_s3

        self.concurrency = max(1, concurrency)
        self.config = s3.config
        # The botocore client of the same endpoint, for the odd HEAD a check needs.
        self.s3 = s3
        self._pacer = s3.pacer
        # Requests waiting for their turn (pacing.py), and the thread that sends them; made on first need.
        self._later: queue.SimpleQueue[tuple[float, _Call, Completions, Callable[[], None]]] | None = None
        self._later_lock = threading.Lock()
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
            # ADAPTIVE: awscrt retries a SlowDown in C, where the pacer never hears of it (pacing.py).
            retry_config=crt_s3.S3RetryConfig(
                max_retries=max(0, s3.config.request_attempts - 1), retry_mode=crt_s3.S3RetryMode.ADAPTIVE
            ),
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
        done: Completions,
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

        def send() -> None:
            call.keep = self._client.make_request(
                type=request_type,
                request=request,
                operation_name=op,
                recv_filepath=recv_filepath,
                on_headers=call.on_headers,
                on_body=None if recv_filepath else call.on_body,
                on_done=on_done,
            )

        counting.note(op)
        wait = self._pacer.turn()
        if wait > 0:
            self._send_later(time.monotonic() + wait, call, done, send)
        else:
            send()

    def _send_later(self, due: float, call: _Call, done: Completions, send: Callable[[], None]) -> None:
        """Send at `due` from the pacing thread: the caller's thread goes on settling and sending to other buckets.

        A backup's GETs and PUTs go to two paced buckets from one thread; waiting
        there for one bucket's turn would let the other's turns pass unused.
        One bucket's turns come in order, so one thread sleeping to each in turn keeps them.
        """
        with self._later_lock:
            if self._later is None:
                self._later = queue.SimpleQueue()
                threading.Thread(target=_send_in_turn, args=(self._later,), name="dr-pacing", daemon=True).start()
            self._later.put((due, call, done, send))

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
            hint = "run the same command again later, or lower dr.concurrency"
            if name == "AWS_ERROR_S3_SLOW_DOWN":
                hint += " or set dr.max_requests_per_second to the store's limit"
            return S3Error(op, bucket, key, known, hint), False
        detail = f"{name}: {getattr(err, 'message', err)}"
        hint = unreachable_hint(self._section) + "; run the same command again"
        return S3Error(op, bucket, key, detail, hint), True

    def _drive(
        self,
        jobs: Iterable[Any],
        done: Completions,
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
        done: Completions,
        start: Callable[[Any, int], _Call | None],
        finish: Callable[[_Call], tuple[Any, Any] | None],
        window: int,
    ) -> Iterator[tuple[Any, Any]]:
        # `inflight` (sent, not yet taken) keeps the window; `sent` counts every
        # request and phase sent, for the wait after an interruption. A signal
        # waits out each step that sends and counts (`shielded`), so `sent`
        # never misses a request; `done` counts what landed on its own.
        inflight = sent = 0

        def settle(completed: _Call) -> tuple[Any, Any] | None:
            nonlocal inflight, sent
            with shielded():
                inflight -= 1
                outcome = finish(completed)
                if outcome is None:  # the same job went out again (a retry or its next phase)
                    inflight += 1
                    sent += 1
            return outcome

        try:
            for job in jobs:
                while inflight >= window:
                    outcome = settle(done.get())
                    if outcome is not None:
                        yield outcome
                with shielded():
                    if start(job, 1) is not None:
                        inflight += 1
                        sent += 1
            while inflight:
                outcome = settle(done.get())
                if outcome is not None:
                    yield outcome
        except BaseException:
            # Interrupted (a signal, or the consumer stopped): wait until every
            # request sent has landed, so a cleanup after this sees every write.
            done.wait_landed(sent)
            raise


def _send_in_turn(later: queue.SimpleQueue[tuple[float, _Call, Completions, Callable[[], None]]]) -> None:
    """Send each request at its turn, for the life of the process (a daemon: it holds nothing when idle)."""
    while True:
        due, call, done, send = later.get()
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            send()
        except Exception as err:  # it must land, or its pump waits for it forever
            call.error = err
            done.put(call)


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
