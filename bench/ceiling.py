"""The server's ceiling: trivial requests per second with the lightest client there is.

`python -m bench.ceiling URL SECONDS THREADS` GETs one presigned URL (a tiny
object) over keep-alive connections from THREADS threads for SECONDS and
prints the number of requests answered. The bench runs two of these processes
at once so one Python interpreter's GIL is not the limit.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from urllib.parse import urlsplit


def hammer(url: str, seconds: float, threads: int) -> int:
    u = urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        while time.monotonic() < stop:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"GET answered {r.status}")
            counts[i] += 1
        conn.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts)


if __name__ == "__main__":
    print(hammer(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
