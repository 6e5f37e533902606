"""Counting requests, whichever engine sends them (tests and the benchmark pin request counts).

botocore clients made while `count_requests` is open count through an event
hook; the awscrt engine, which sends requests botocore never sees, reports
each one through `note`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

# (event name, handler) pairs attached to every botocore client made from now on.
_CLIENT_HOOKS: list[tuple[str, Callable[..., Any]]] = []
# The counters open now, fed by `note`.
_COUNTERS: list[Callable[[str], None]] = []


@contextlib.contextmanager
def count_requests() -> Iterator[Counter[str]]:
    """Count HTTP attempts by operation name on every client created inside the block."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(operation: str) -> None:
        with lock:
            counts[operation] += 1

    def hook(event_name: str, **_: Any) -> None:
        count(event_name.rsplit(".", 1)[-1])

    entry = ("before-send.s3", hook)
    _CLIENT_HOOKS.append(entry)
    _COUNTERS.append(count)
    try:
        yield counts
    finally:
        _CLIENT_HOOKS.remove(entry)
        _COUNTERS.remove(count)


def note(operation: str) -> None:
    """Count one request sent outside botocore (the awscrt engine)."""
    for count in list(_COUNTERS):
        count(operation)


def client_hooks() -> list[tuple[str, Callable[..., Any]]]:
    """The hooks a botocore client made now gets."""
    return list(_CLIENT_HOOKS)
