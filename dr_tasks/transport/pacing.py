"""Pacing requests to a store that limits their rate: a ceiling the operator sets, and backing off on SlowDown.

DigitalOcean Spaces (and S3, per prefix) answers 503 SlowDown above a request
rate. A run that keeps sending at its full pace spends its time in retry
backoff (and may run out of retries); one that sends at the store's rate does
not. So every request of one bucket, whichever engine sends it, first waits
for its turn here: the botocore client through its `before-send` event (each
attempt, retries included), the awscrt engine in `CrtClient._submit` (which
hands a request whose turn is later to its pacing thread rather than wait).

- `max_requests_per_second` (config) is a ceiling: requests go out evenly
  spaced at most that fast, from the first one.
- A SlowDown (or any 503, or a throttling error code) seen by botocore cuts
  the pace to `BACKOFF` of itself (at most once per `COOLDOWN`: the requests
  already in flight answer 503 too, and one burst is one signal); each
  second without one gives back `RECOVERY` of it (AIMD), up to the ceiling.
  awscrt retries inside C where no Python sees the 503, so its client runs
  awscrt's own `ADAPTIVE` retry mode, the same idea in C (crt_client.py).

Off (no ceiling, no SlowDown yet), `turn` is one attribute test and
an unlocked count, no lock and no clock: the pacer costs an unthrottled run
nothing measurable. The count (approximate under threads, which is all it
needs to be) gives the pace a first SlowDown starts backing off from.

One pacer per bucket and endpoint in a process (`pacer_for`), so the lease's
client, the listing's and the engines' share one budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# Error codes that mean "too fast" (S3 and S3-compatible stores, botocore's own list).
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
    }
)
# The pace after a SlowDown, as a share of the pace before it.
BACKOFF = 0.7
# What each second without a SlowDown gives back, as a share of the pace (at least one request a second).
RECOVERY = 0.1
# One cut per this many seconds: the 503s of requests sent before the cut are not news.
COOLDOWN = 0.5
# Turns a pacer that fell behind may catch up back to back: the awscrt engine waits for the turns of two
# buckets (a backup's GET, then its PUT) on one thread, and a turn missed while waiting on the other is
# not lost; small enough for a store's own burst allowance.
CATCH_UP = 4
# Requests sent before a first SlowDown is taken for a rate limit: a store that limits a rate refuses
# after a burst, while a 503 among the first few requests (a store starting up, a passing fault) says
# nothing about a rate, and pacing from a pace measured on so few would crawl for the rest of the run.
MIN_EVIDENCE = 50
# Never slower than this (requests a second): a store that throttles everything fails the run by its retries.
MIN_RATE = 1.0


class Pacer:
    """When each request of one bucket may go: evenly spaced at `rate`, once a ceiling or a SlowDown says so."""

    def __init__(
        self,
        ceiling: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ceiling = ceiling
        # Read without the lock on every request: True once there is a pace to keep.
        self.active = ceiling is not None
        self.rate = float(ceiling or 0.0)
        self.slowdowns = 0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent = 0
        self._first = 0.0
        # When the next request may go (spacing them 1/rate apart, see CATCH_UP).
        self._next = 0.0
        self._last_cut = float("-inf")
        self._last_grow = 0.0

    def turn(self) -> float:
        """Take the next turn: seconds until this request may go (0.0: now)."""
        if not self.active:
            if not self._sent:
                self._first = self._clock()
            self._sent += 1
            return 0.0
        with self._lock:
            now = self._clock()
            self._grow(now)
            at = max(self._next, now - CATCH_UP / self.rate)
            self._next = at + 1.0 / self.rate
        return at - now

    def before_send(self, **_: Any) -> None:
        """Wait for this request's turn (a botocore `before-send` handler)."""
        wait = self.turn()
        if wait > 0:
            self._sleep(wait)

    def slow_down(self) -> None:
        """The store said "too fast": cut the pace (the first time, from the pace so far)."""
        with self._lock:
            now = self._clock()
            self.slowdowns += 1
            if self.active and now - self._last_cut < COOLDOWN:
                return
            if self.active:
                pace = self.rate
            elif self._sent < MIN_EVIDENCE:
                return  # botocore's retry handles it
            else:
                # The pace so far is the best guess of what the store was refusing.
                pace = self._sent / max(now - self._first, 0.1)
                self.active = True
            cap = self.ceiling if self.ceiling is not None else float("inf")
            self.rate = max(MIN_RATE, min(cap, pace * BACKOFF))
            self._last_cut = self._last_grow = now

    def _grow(self, now: float) -> None:
        """Give back pace for the time since the last cut or growth (under the lock)."""
        if now - self._last_cut < COOLDOWN:
            return
        cap = self.ceiling if self.ceiling is not None else float("inf")
        if self.rate < cap:
            step = max(1.0, self.rate * RECOVERY) * (now - self._last_grow)
            self.rate = min(cap, self.rate + step)
        self._last_grow = now

    def needs_retry(self, response: Any = None, **_: Any) -> None:
        """A botocore `needs-retry` handler: a 503 or a throttling code slows the pace; decides nothing."""
        if response is None:
            return
        http, parsed = response
        if http.status_code == 503 or parsed.get("Error", {}).get("Code") in THROTTLE_CODES:
            self.slow_down()

    def install(self, events: Any) -> None:
        """Pace every request of a botocore client (its event system) by this pacer."""
        events.register("before-send.s3", self.before_send)
        events.register("needs-retry.s3", self.needs_retry)


_PACERS: dict[tuple[str | None, str | None, str, float | None], Pacer] = {}
_LOCK = threading.Lock()


def pacer_for(endpoint_url: str | None, region: str | None, bucket: str, ceiling: float | None) -> Pacer:
    """The pacer of one bucket at one endpoint in this process (a store limits per bucket)."""
    key = (endpoint_url, region, bucket, ceiling)
    with _LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = Pacer(ceiling)
        return pacer
