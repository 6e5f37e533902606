"""`transport.pacing.Pacer` on a fake clock: off, a ceiling, a SlowDown that cuts the pace and its recovery."""

from __future__ import annotations

from types import SimpleNamespace

from dr_tasks.transport import pacing
from dr_tasks.transport.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 50.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_off_it_never_waits_and_reads_the_clock_once() -> None:
    clock = Clock()
    p = Pacer(None, clock=clock)
    reads = clock.reads
    assert all(p.turn() == 0.0 for _ in range(1000))
    assert clock.reads == reads + 1  # the first request's time, for the pace a first SlowDown starts from


def test_a_ceiling_spaces_requests_after_a_small_catch_up() -> None:
    clock = Clock()
    p = Pacer(10.0, clock=clock)
    waits = [p.turn() for _ in range(pacing.CATCH_UP + 3)]
    assert all(w < 1e-9 for w in waits[: pacing.CATCH_UP + 1])
    assert [round(w, 6) for w in waits[pacing.CATCH_UP + 1 :]] == [0.1, 0.2]


def test_a_slowdown_cuts_the_pace_once_per_burst_and_it_recovers_to_the_ceiling() -> None:
    clock = Clock()
    p = Pacer(100.0, clock=clock)
    p.slow_down()
    assert p.rate == 100.0 * pacing.BACKOFF
    p.slow_down()  # the same burst's other 503s are not news
    assert p.rate == 100.0 * pacing.BACKOFF and p.slowdowns == 2
    clock.now += 60
    p.turn()
    assert p.rate == 100.0  # never above the ceiling


def test_without_a_ceiling_the_first_slowdown_starts_from_the_pace_so_far() -> None:
    clock = Clock()
    p = Pacer(None, clock=clock)
    for _ in range(200):
        p.turn()
    clock.now += 2.0  # 200 requests in 2 s
    p.needs_retry(response=(SimpleNamespace(status_code=503), {"Error": {"Code": "SlowDown"}}))
    assert p.active and p.rate == 100.0 * pacing.BACKOFF
    p2 = Pacer(None, clock=clock)
    for _ in range(pacing.MIN_EVIDENCE):
        p2.turn()
    p2.needs_retry(response=(SimpleNamespace(status_code=404), {"Error": {"Code": "NoSuchKey"}}))
    p2.needs_retry(response=None)
    assert not p2.active


def test_a_slowdown_among_the_first_requests_is_no_rate_limit() -> None:
    p = Pacer(None, clock=Clock())
    for _ in range(pacing.MIN_EVIDENCE - 1):
        p.turn()
    p.slow_down()
    assert not p.active and p.slowdowns == 1 and p.turn() == 0.0
