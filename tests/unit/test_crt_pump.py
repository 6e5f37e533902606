"""The awscrt pump and signals: an interrupted run waits for every request it sent before anything cleans up."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from dr_tasks.interrupt import Interrupted, signals_raise
from dr_tasks.transport.crt_client import Completions, CrtClient


def _slow_start(done: Completions, landed: list[int]) -> Any:
    def start(job: int, attempt: int) -> object:
        call = object()

        def complete() -> None:
            time.sleep(0.3)
            landed.append(job)
            done.put(call)

        threading.Thread(target=complete, daemon=True).start()
        # The signal arrives while this request is in flight, before `start` returns.
        os.kill(os.getpid(), signal.SIGINT)
        return call

    return start


def test_a_signal_while_a_request_starts_waits_for_that_request() -> None:
    done = Completions()
    landed: list[int] = []
    with signals_raise(), pytest.raises(Interrupted):
        list(CrtClient._pump(iter([7]), done, _slow_start(done, landed), lambda c: ("done", c), 4))
    # Cleanup after the pump (a snapshot removing its copies) runs only now: the request has landed.
    assert landed == [7]


def test_a_signal_while_a_retry_goes_out_waits_for_the_retry() -> None:
    done = Completions()
    landed: list[int] = []
    retry = _slow_start(done, landed)
    settled: list[object] = []

    def start(job: int, attempt: int) -> object:
        call = object()
        done.put(call)  # answered at once
        return call

    def finish(call: object) -> tuple[Any, Any] | None:
        if not settled:
            settled.append(call)
            retry(8, 2)  # the same job goes out again (a signal arrives meanwhile): not settled yet
            return None
        return ("done", call)

    with signals_raise(), pytest.raises(Interrupted):
        list(CrtClient._pump(iter([8]), done, start, finish, 4))
    assert landed == [8]


def test_a_signal_right_after_a_completion_is_taken_does_not_wait_for_it_again() -> None:
    class SignalOnTake(Completions):
        def get(self) -> Any:
            call = super().get()
            # The signal lands after the queue gave the call, before the pump counted it.
            os.kill(os.getpid(), signal.SIGINT)
            return call

    done = SignalOnTake()

    def start(job: int, attempt: int) -> object:
        call = object()
        done.put(call)  # answered at once
        return call

    # Were the pump to wait for that call again, only this would end the wait.
    rescue = threading.Timer(5, done.put, [object()])
    rescue.start()
    started = time.monotonic()
    try:
        with signals_raise(), pytest.raises(Interrupted):
            list(CrtClient._pump(iter([1, 2]), done, start, lambda c: ("done", c), 4))
    finally:
        rescue.cancel()
    assert time.monotonic() - started < 3
