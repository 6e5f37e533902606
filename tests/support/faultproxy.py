"""A small HTTP proxy on 127.0.0.1 that injects S3 faults in front of a real server.

The client under test (a subprocess running `inv dr.*`) talks to the proxy
exactly as it would talk to the server; the proxy forwards every request
unchanged (the Host header too, so SigV4 signatures still verify) unless a
rule says to answer 503 SlowDown, 500, 403, or to reset the connection.
It also counts requests by S3 operation, as the server sees them.

Faults that need the real response or time (see `Rule.fault`):
- "cut": forward, send the server's headers and half its body, then reset,
  a GET whose body breaks off part-way;
- "stall": the same, but hang after half the body, so the client's read
  timeout fires mid-body;
- "hold": never forward; park the request until `release()` (or `clear()`)
  or `hold_seconds`, then reset. A client waits for an answer that never
  comes: a read timeout before the headers, or a process to `kill -9` at
  a known point;
- "hold-after": forward (the request takes effect on the server), then park
  the response the same way: the client dies, or times out, after the fact.

`rewrite`, when set, edits every 200 body on its way back (a store that
stamps versions differently, without a store that does).

`throttle`, when set (a `Throttle`), makes the proxy a store that limits
request rates as DigitalOcean Spaces does: 503 SlowDown above a rate, and to
a write on a key that already has a few writes in flight. `timeline` says
when each request came and whether it was throttled.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

_BODIES = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    403: ("AccessDenied", "Access Denied"),
}


def s3_operation(method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request (the names AWS's docs use); the bench counts with it too."""
    parts = [p for p in path.split("/") if p]
    has_key = len(parts) > 1
    if method == "PUT":
        if "x-amz-copy-source" in headers:
            return "UploadPartCopy" if "partNumber" in query else "CopyObject"
        if "partNumber" in query:
            return "UploadPart"
        if not has_key:
            for sub in ("versioning", "lifecycle", "policy", "tagging"):
                if sub in query:
                    return f"PutBucket{sub.capitalize()}"
            return "CreateBucket"
        return "PutObject"
    if method == "GET":
        if not has_key:
            for sub, name in (
                ("versions", "ListObjectVersions"),
                ("versioning", "GetBucketVersioning"),
                ("lifecycle", "GetBucketLifecycle"),
                ("location", "GetBucketLocation"),
                ("uploads", "ListMultipartUploads"),
            ):
                if sub in query:
                    return name
            if not parts:
                return "ListBuckets"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "POST":
        if "delete" in query:
            return "DeleteObjects"
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "Post"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else ("DeleteObject" if has_key else "DeleteBucket")
    return method


_WRITES = frozenset({"PutObject", "CopyObject", "UploadPart", "UploadPartCopy"})


@dataclass
class Throttle:
    """Admit at most `rate` requests a second (a token bucket holding `burst`), and `per_key_writes` writes per key.

    Not thread-safe on its own: `FaultProxy` calls it under its lock.
    A refused request takes no token, as a store's limiter does not
    count what it turned away.
    """

    rate: float
    burst: float = 5.0
    per_key_writes: int = 2
    clock: Callable[[], float] = time.monotonic
    tokens: float | None = None
    last: float = 0.0
    writing: Counter[str] = field(default_factory=Counter)

    def admit(self, op: str, key: str) -> str | None:
        """None when `op` on `key` may go through now (the caller then owes `done`), else why not."""
        now = self.clock()
        if self.tokens is None:  # first request: a full bucket
            self.tokens, self.last = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if op in _WRITES and self.writing[key] >= self.per_key_writes:
            return "key"
        if self.tokens < 1 - 1e-9:  # a request right on the rate is not refused for rounding
            return "rate"
        self.tokens -= 1
        if op in _WRITES:
            self.writing[key] += 1
        return None

    def done(self, op: str, key: str) -> None:
        if op in _WRITES:
            self.writing[key] -= 1


@dataclass
class Rule:
    """Answer `fault` (503, 500, 403, "reset", "cut", "stall", "hold", "hold-after", "200-error", "200-garbage").

    "200-error" is a 200 whose body is an InternalError: how S3 reports a
    copy that failed after its response had begun. "200-garbage" is a 200
    whose body is cut off mid-XML (no CopyObjectResult, no <Error>).

    `op` matches the S3 operation, `key` a substring of the decoded key,
    `prefix` exactly the `prefix` parameter of a listing ("" when absent);
    the first `skip` matches pass through, then `times` matches fault (-1:
    all). `delay` seconds are slept before any matching request is handled.
    "stall", "hold" and "hold-after" park for at most `hold_seconds`.
    """

    op: str | None = None
    key: str | None = None
    fault: int | str | None = 503
    times: int = 1
    skip: int = 0
    delay: float = 0.0
    matched: int = 0
    fired: int = 0
    prefix: str | None = None
    hold_seconds: float = 60.0

    def matches(self, op: str, key: str, prefix: str = "") -> bool:
        return (
            (self.op is None or self.op == op)
            and (self.key is None or self.key in key)
            and (self.prefix is None or self.prefix == prefix)
        )


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self.upstream_host = u.hostname or "127.0.0.1"
        self.upstream_port = u.port or 80
        self.rules: list[Rule] = []
        self.counts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        # (operation, key, listing prefix) of every request, in the order they arrived.
        self.log: list[tuple[str, str, str]] = []
        # Requests being answered now, and the most ever at once, by operation.
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        # Called with (operation, body) on every 200 or 206 answer forwarded; returns the body to send instead.
        self.rewrite: Callable[[str, bytes], bytes] | None = None
        self.throttle: Throttle | None = None
        # (monotonic time, operation, answered 503 by `throttle`) of every request past the rules.
        self.timeline: list[tuple[float, str, bool]] = []
        self._lock = threading.Lock()
        # Parked requests ("stall", "hold", "hold-after") wait on this; `release()` swaps in a fresh one.
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                # A client that went away (killed, timed out) is part of the game, not an error.
                self.dr_op: str | None = None
                try:
                    with contextlib.suppress(ConnectionError):
                        proxy._serve(self)
                finally:
                    if self.dr_op is not None:
                        with proxy._lock:
                            proxy.in_flight[self.dr_op] -= 1

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget the rules and counts, and let go of every parked request."""
        with self._lock:
            self.rules.clear()
            self.counts.clear()
            self.faults.clear()
            self.log.clear()
            self.timeline.clear()
            self.peak.clear()
        self.release()

    def release(self) -> None:
        """Parked requests end now (with a reset): their clients are dead or have timed out."""
        with self._lock:
            event, self._release = self._release, threading.Event()
        event.set()

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving
    def _decide(self, op: str, key: str, prefix: str = "") -> tuple[int | str | None, float, float]:
        """The first rule that fires decides; skipped or spent rules let later ones try."""
        delay = 0.0
        with self._lock:
            self.counts[op] += 1
            for rule in self.rules:
                if not rule.matches(op, key, prefix):
                    continue
                rule.matched += 1
                delay = max(delay, rule.delay)
                if rule.matched <= rule.skip or not (rule.times < 0 or rule.fired < rule.times):
                    continue
                rule.fired += 1
                if rule.fault is not None:
                    self.faults[f"{op}:{rule.fault}"] += 1
                    return rule.fault, delay, rule.hold_seconds
        return None, delay, 0.0

    def _park(self, seconds: float) -> None:
        with self._lock:
            event = self._release
        event.wait(seconds)

    @staticmethod
    def _reset(h: BaseHTTPRequestHandler) -> None:
        # SO_LINGER 0: close() sends RST, the client sees "connection reset".
        with contextlib.suppress(OSError):
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        query = parse_qs(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in h.headers.items()}
        op = s3_operation(h.command, split.path, query, headers)
        key = unquote(split.path.split("/", 2)[2]) if split.path.count("/") >= 2 else ""
        length = int(headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        prefix = query.get("prefix", [""])[0]
        with self._lock:
            self.log.append((op, key, prefix))
            self.in_flight[op] += 1
            self.peak[op] = max(self.peak[op], self.in_flight[op])
        h.dr_op = op  # type: ignore[attr-defined]
        fault, delay, hold = self._decide(op, key, prefix)
        if delay:
            time.sleep(delay)
        admitted = False
        if fault is None and self.throttle is not None:
            with self._lock:
                why = self.throttle.admit(op, key)
                self.timeline.append((time.monotonic(), op, why is not None))
                if why is not None:
                    self.faults[f"{op}:503-{why}"] += 1
            fault, admitted = (503, False) if why is not None else (None, True)
        try:
            self._answer(h, op, key, body, fault, hold)
        finally:
            if admitted:
                with self._lock:
                    assert self.throttle is not None
                    self.throttle.done(op, key)

    def _answer(
        self, h: BaseHTTPRequestHandler, op: str, key: str, body: bytes, fault: int | str | None, hold: float
    ) -> None:
        if fault == "reset":
            self._reset(h)
            return
        if fault == "hold":
            self._park(hold)
            self._reset(h)
            return
        if fault == "200-garbage":
            payload = b'<?xml version="1.0" encoding="UTF-8"?><CopyObjectResult><LastModi'
            h.send_response(200)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        if isinstance(fault, int) or fault == "200-error":
            status = 200 if fault == "200-error" else int(fault)
            code, message = _BODIES.get(500 if fault == "200-error" else status, ("Fault", "injected"))
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message><Key>{key}</Key></Error>"
            ).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            fwd_headers = {k: v for k, v in h.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(
                h.command, h.path, body=body if body or h.command in ("PUT", "POST") else None, headers=fwd_headers
            )
            resp = conn.getresponse()
            data = resp.read()
            if self.rewrite is not None and resp.status in (200, 206) and h.command != "HEAD":
                data = self.rewrite(op, data)
            if fault == "hold-after":
                # The server has done it; the client never hears back.
                self._park(hold)
                self._reset(h)
                return
            h.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in (
                    "transfer-encoding",
                    "connection",
                    "content-length",
                    "keep-alive",
                    "server",
                    "date",
                ):
                    h.send_header(k, v)
            if h.command == "HEAD":
                h.send_header("Content-Length", resp.getheader("Content-Length") or "0")
            else:
                h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if fault in ("cut", "stall") and h.command != "HEAD":
                # The full Content-Length was promised; half of it arrives, then nothing or a reset.
                h.wfile.write(data[: len(data) // 2])
                h.wfile.flush()
                if fault == "stall":
                    self._park(hold)
                else:
                    time.sleep(0.2)  # let the client read the half before the RST
                self._reset(h)
                return
            if h.command != "HEAD":
                h.wfile.write(data)
        finally:
            conn.close()
