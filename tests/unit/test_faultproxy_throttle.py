"""The fault proxy's store-that-throttles limiter (tests/support/faultproxy.py `Throttle`), on a fake clock."""

from __future__ import annotations

from tests.support.faultproxy import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    t = Throttle(rate=10, burst=3, clock=clock)
    assert [t.admit("GetObject", "k") for _ in range(4)] == [None, None, None, "rate"]
    clock.now += 0.1  # one token's worth
    assert t.admit("GetObject", "k") is None
    assert t.admit("GetObject", "k") == "rate"
    clock.now += 10  # idle time refills only up to the burst
    assert [t.admit("HeadObject", "k") for _ in range(4)] == [None, None, None, "rate"]


def test_a_sustained_rate_is_admitted_whole() -> None:
    clock = Clock()
    t = Throttle(rate=50, burst=1, clock=clock)
    admitted = 0
    for _ in range(500):  # 10 s at exactly 50/s
        clock.now += 1 / 50
        admitted += t.admit("GetObject", "k") is None
    assert admitted == 500


def test_writes_to_one_key_in_flight_are_bounded() -> None:
    clock = Clock()
    t = Throttle(rate=1000, burst=100, per_key_writes=2, clock=clock)
    assert t.admit("PutObject", "a") is None
    assert t.admit("CopyObject", "a") is None
    assert t.admit("UploadPart", "a") == "key"
    assert t.admit("PutObject", "b") is None  # another key is free
    assert t.admit("GetObject", "a") is None  # reads are not limited per key
    t.done("PutObject", "a")
    assert t.admit("UploadPartCopy", "a") is None
    t.done("GetObject", "a")  # a read's done leaves the write count alone
    assert t.admit("PutObject", "a") == "key"
