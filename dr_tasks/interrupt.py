"""SIGINT and SIGTERM as an exception the operations can clean up after.

A task (`tasks/base.py`) turns both signals into `Interrupted`, raised in the
main thread where it is waiting. It is a BaseException, so no `except
Exception` swallows it and every `finally` (the lease's release among them)
runs. An operation that has something to clean up catches it, does what a
failed run does, adds a note saying what it cleaned up or left, and re-raises;
the task prints the notes as one line and exits 130 (SIGINT) or 143 (SIGTERM).

`shielded()` defers the signal over a few lines that must not be cut in half
(an index row being written); a signal after the first, during the cleanup, is
ignored rather than cutting the cleanup short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(BaseException):
    """The process got SIGINT or SIGTERM; `notes` say what was cleaned up or left."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.notes: list[str] = []

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        # The shell's convention: 128 + the signal's number (130, 143).
        return 128 + self.signum


_state = {"depth": 0, "pending": 0, "fired": 0}


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state["fired"]:
        return
    if _state["depth"]:
        _state["pending"] = signum
        return
    _state["fired"] = signum
    raise Interrupted(signum)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold a signal back until the block ends (in the main thread; elsewhere it is a no-op)."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"] and not _state["fired"]:
            signum, _state["pending"] = _state["pending"], 0
            _state["fired"] = signum
            raise Interrupted(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _state.update(depth=0, pending=0, fired=0)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
