"""A counting (and optionally slowing) HTTP proxy in front of one S3 server, run as its own process.

`python -m bench.proxy --upstream http://127.0.0.1:PORT [--delay 0.03]` prints
`PORT <port>` on its first line and serves until killed. Every request is
forwarded unchanged (the Host header too, so SigV4 signatures still verify);
the proxy counts it by S3 operation as the server sees it, and sleeps `delay`
seconds first when asked (latency mode: a real region is ~30 ms away).

It runs in a process of its own so its CPU is neither the bench's nor the
client's. `GET /__bench__/counts` answers the counts as JSON and
`POST /__bench__/reset` zeroes them; neither is counted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.faultproxy import s3_operation

# Response headers the proxy sets itself (or must not pass through).
_HOP = frozenset(("transfer-encoding", "connection", "content-length", "keep-alive"))
_CHUNK = 1 << 20


class _State:
    def __init__(self, host: str, port: int, delay: float) -> None:
        self.host = host
        self.port = port
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.local = threading.local()

    def upstream(self, fresh: bool = False) -> http.client.HTTPConnection:
        # One persistent upstream connection per client connection (= handler thread):
        # a new TCP connection per request would cost the server more than the request.
        conn = getattr(self.local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            self.local.conn = conn
        return conn


def _read_body(h: BaseHTTPRequestHandler) -> bytes | None:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += h.rfile.read(size)
            h.rfile.readline()
    length = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(length) if length else None


def make_server(upstream: str, delay: float, port: int = 0) -> ThreadingHTTPServer:
    u = urlsplit(upstream)
    state = _State(u.hostname or "127.0.0.1", u.port or 80, delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _control(self) -> None:
            with state.lock:
                payload = json.dumps(dict(state.counts)).encode()
                if self.command == "POST":
                    state.counts.clear()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self) -> None:
            if self.path.startswith("/__bench__/"):
                self._control()
                return
            split = urlsplit(self.path)
            query = parse_qs(split.query, keep_blank_values=True)
            headers = {k.lower(): v for k, v in self.headers.items()}
            op = s3_operation(self.command, split.path, query, headers)
            body = _read_body(self)
            with state.lock:
                state.counts[op] += 1
            if state.delay:
                time.sleep(state.delay)
            fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            if "transfer-encoding" in headers:
                fwd = {k: v for k, v in fwd.items() if k.lower() != "transfer-encoding"}
                fwd["Content-Length"] = str(len(body or b""))
            send_body = body if body is not None or self.command in ("PUT", "POST") else None
            for attempt in (0, 1):
                conn = state.upstream(fresh=attempt == 1)
                try:
                    conn.request(self.command, self.path, body=send_body, headers=fwd)
                    resp = conn.getresponse()
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    # The server closed an idle keep-alive connection: once more on a new one.
                    if attempt == 1:
                        raise
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP:
                    self.send_header(k, v)
            length = resp.getheader("Content-Length")
            if self.command == "HEAD":
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                resp.read()
            elif length is not None:
                # Stream: a large object must not sit in the proxy's memory.
                self.send_header("Content-Length", length)
                self.end_headers()
                while chunk := resp.read(_CHUNK):
                    self.wfile.write(chunk)
            else:
                data = resp.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            if resp.will_close:
                state.upstream(fresh=True)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    return server


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds added before each request")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    server = make_server(args.upstream, args.delay, args.port)
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
