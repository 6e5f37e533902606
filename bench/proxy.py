"""A counting (and optionally slowing) HTTP proxy in front of one S3 server, run as its own process.

`python -m bench.proxy --upstream http://127.0.0.1:PORT [--delay 0.03]` prints
`PORT <port>` on its first line and serves until killed. Every request is
forwarded unchanged (the Host header too, so SigV4 signatures still verify);
the proxy counts it by S3 operation as the server sees it (the classifier is
tests/support/faultproxy.py's `s3_operation`, shared), and waits `delay`
seconds first when asked (latency mode: a real region is ~30 ms away).

It is one asyncio event loop that parses only the request line and headers
(enough to classify the operation and find where the body ends) and splices
the bodies through in 256 KiB pieces without looking at them; the delay is an
`asyncio.sleep`, so a thousand requests can wait at once without a thread
each. Every socket has TCP_NODELAY: the first version (a ThreadingHTTPServer)
wrote the response head and body in two sends without it, and Nagle plus the
client's delayed ACK added ~40 ms to most requests (bench/README.md, "Is the
proxy the bottleneck?").

`--throttle RATE` makes it a store that limits request rates (DigitalOcean
Spaces): above RATE requests a second (a small burst allowed), or to a write on
a key with `--per-key-writes` writes in flight, it answers 503 SlowDown without
forwarding (tests/support/faultproxy.py's `Throttle`, shared) and counts the
refusal as `SlowDown` beside the operations. Not yet a mode of `inv bench`.

It runs in a process of its own so its CPU is neither the bench's nor the
client's. `GET /__bench__/counts` answers the counts as JSON and
`POST /__bench__/reset` zeroes them; neither is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from tests.support.faultproxy import Throttle, s3_operation

_PIECE = 256 * 1024
# Request headers that describe this hop only; the proxy manages its own connections.
_HOP_REQUEST = frozenset(("connection", "keep-alive", "proxy-connection", "expect", "te", "upgrade"))
_HOP_RESPONSE = frozenset(("connection", "keep-alive"))
_NO_BODY_STATUS = frozenset((204, 304))
_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)

Headers = list[tuple[str, str]]


class _Closed(Exception):
    """The client closed its connection between requests: not an error."""


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, Headers]:
    """The start line and the headers of one message (request or response)."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            raise _Closed from None
        raise
    lines = raw.decode("latin-1").split("\r\n")
    headers: Headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: Headers, name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _head_bytes(start: str, headers: Headers) -> bytes:
    return (start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    """Copy exactly `n` bytes, a piece at a time: a large object never sits in the proxy's memory."""
    while n > 0:
        piece = await reader.read(min(n, _PIECE))
        if not piece:
            raise asyncio.IncompleteReadError(b"", n)
        writer.write(piece)
        n -= len(piece)
        await writer.drain()


async def _splice_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy a chunked body as it is (framing included), to its last chunk and trailers."""
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:
                trailer = await reader.readuntil(b"\r\n")
                writer.write(trailer)
                if trailer == b"\r\n":
                    await writer.drain()
                    return
        await _splice(reader, writer, size + 2)  # the chunk and its CRLF


async def _dechunk(reader: asyncio.StreamReader) -> bytes:
    """A chunked request body, whole (as the first proxy did: servers differ on chunked uploads)."""
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return bytes(out)
        out += await reader.readexactly(size + 2)
        del out[-2:]


class Proxy:
    def __init__(self, host: str, port: int, delay: float, throttle: Throttle | None = None) -> None:
        self.host = host
        self.port = port
        self.delay = delay
        self.throttle = throttle
        # One event loop, one thread: no lock needed around the counts.
        self.counts: Counter[str] = Counter()

    async def _control(self, method: str, writer: asyncio.StreamWriter) -> None:
        payload = json.dumps(dict(self.counts)).encode()
        if method == "POST":
            self.counts.clear()
        writer.write(
            _head_bytes(
                "HTTP/1.1 200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            + payload
        )
        await writer.drain()

    async def _slow_down(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, lower: dict[str, str]
    ) -> None:
        """Refuse one request as a throttling store does: its body read and dropped, 503 SlowDown."""
        self.counts["SlowDown"] += 1
        length = int(lower.get("content-length") or 0)
        if "chunked" in lower.get("transfer-encoding", "").lower():
            await _dechunk(reader)
        elif lower.get("expect", "").lower() == "100-continue" and length:
            # The client holds its body back until a 100 Continue that never comes: answer and hang up.
            raise ConnectionError("refused before its body")
        elif length:
            await reader.readexactly(length)
        writer.write(
            _head_bytes(
                "HTTP/1.1 503 Slow Down",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(_SLOW_DOWN)))],
            )
            + (b"" if method == "HEAD" else _SLOW_DOWN)
        )
        await writer.drain()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        _nodelay(writer)
        return reader, writer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: requests one after another (keep-alive), over one upstream connection."""
        _nodelay(writer)
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        # The (operation, key) the throttle admitted and this connection has not yet answered.
        admitted: tuple[str, str] | None = None
        try:
            while True:
                try:
                    start, headers = await _read_head(reader)
                except _Closed:
                    return
                method, target, _version = start.split(" ", 2)
                keep_alive = (_get(headers, "connection") or "").lower() != "close"
                if target.startswith("/__bench__/"):
                    await self._control(method, writer)
                    if not keep_alive:
                        return
                    continue
                split = urlsplit(target)
                query = parse_qs(split.query, keep_blank_values=True)
                lower = {k.lower(): v for k, v in headers}
                op = s3_operation(method, split.path, query, lower)
                if self.throttle is not None:
                    key = split.path.split("/", 2)[2] if split.path.count("/") >= 2 else ""
                    if self.throttle.admit(op, key) is not None:
                        await self._slow_down(reader, writer, method, lower)
                        if not keep_alive:
                            return
                        continue
                    admitted = (op, key)
                self.counts[op] += 1
                if self.delay:
                    await asyncio.sleep(self.delay)

                fwd = [(k, v) for k, v in headers if k.lower() not in _HOP_REQUEST]
                body: bytes | None = None
                length = int(lower.get("content-length") or 0)
                if "chunked" in lower.get("transfer-encoding", "").lower():
                    body = await _dechunk(reader)
                    fwd = [(k, v) for k, v in fwd if k.lower() not in ("transfer-encoding", "content-length")]
                    fwd.append(("Content-Length", str(len(body))))
                elif lower.get("expect", "").lower() == "100-continue" and length:
                    # Answer the client's 100-continue here and send the upstream no Expect:
                    # the body follows the head at once.
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()

                # A reused upstream connection the server closed while idle is replaced first;
                # one that fails on a request without a body is retried once on a new one.
                for attempt in (0, 1):
                    if up is None or up[0].at_eof():
                        if up is not None:
                            up[1].close()
                        up = await self._connect()
                    ureader, uwriter = up
                    try:
                        uwriter.write(_head_bytes(f"{method} {target} HTTP/1.1", fwd) + (body or b""))
                        if body is None and length:
                            await _splice(reader, uwriter, length)
                        else:
                            await uwriter.drain()
                        status_line, rheaders = await _read_head(ureader)
                        while status_line.split(" ", 2)[1].startswith("1"):  # interim 100 Continue
                            status_line, rheaders = await _read_head(ureader)
                        break
                    except (ConnectionError, asyncio.IncompleteReadError, _Closed):
                        uwriter.close()
                        up = None
                        if attempt == 1 or (body is None and length):
                            raise
                status = int(status_line.split(" ", 2)[1])
                rlower = {k.lower(): v for k, v in rheaders}
                up_closes = rlower.get("connection", "").lower() == "close"
                out = [(k, v) for k, v in rheaders if k.lower() not in _HOP_RESPONSE]
                if method == "HEAD" or status in _NO_BODY_STATUS:
                    framing = "none"
                elif "chunked" in rlower.get("transfer-encoding", "").lower():
                    framing = "chunked"
                elif "content-length" in rlower:
                    framing = "length"
                else:
                    framing, up_closes, keep_alive = "close", True, False
                if not keep_alive:
                    out.append(("Connection", "close"))
                writer.write(_head_bytes(status_line, out))
                if framing == "length":
                    await _splice(ureader, writer, int(rlower["content-length"]))
                elif framing == "chunked":
                    await _splice_chunked(ureader, writer)
                elif framing == "close":
                    while piece := await ureader.read(_PIECE):
                        writer.write(piece)
                        await writer.drain()
                await writer.drain()
                if admitted is not None and self.throttle is not None:
                    self.throttle.done(*admitted)
                    admitted = None
                if up_closes:
                    up[1].close()
                    up = None
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            # A client or server that hung up mid-message: drop this connection, as a real hop would.
            return
        finally:
            if admitted is not None and self.throttle is not None:
                self.throttle.done(*admitted)
            if up is not None:
                up[1].close()
            writer.close()


async def serve(upstream: str, delay: float, port: int = 0, throttle: Throttle | None = None) -> None:
    u = urlsplit(upstream)
    proxy = Proxy(u.hostname or "127.0.0.1", u.port or 80, delay, throttle)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", port, limit=1 << 20, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    sys.stdout.close()
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds added before each request")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--throttle", type=float, metavar="RATE", help="answer 503 SlowDown above RATE requests/s")
    ap.add_argument("--per-key-writes", type=int, default=2, help="with --throttle: writes in flight per key")
    args = ap.parse_args(argv)
    throttle = Throttle(args.throttle, per_key_writes=args.per_key_writes) if args.throttle else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.upstream, args.delay, args.port, throttle))


if __name__ == "__main__":
    main()
