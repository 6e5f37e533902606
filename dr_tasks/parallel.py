"""Run one S3 call per item on `concurrency` threads and collect the failures."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import DrError
from .progress import NULL_PROGRESS, Progress

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Failure(Generic[T]):
    item: T
    error: DrError


def run_parallel(
    fn: Callable[[T], R],
    items: Iterable[T],
    concurrency: int,
    progress: Progress = NULL_PROGRESS,
    stop_on_first_failure: bool = False,
) -> tuple[list[tuple[T, R]], list[Failure[T]]]:
    """Apply `fn` to every item, at most `concurrency` at a time.

    Items are pulled lazily, so a listing can stream straight into the pool and
    memory stays bounded by `concurrency`, not by the number of items. Only
    `DrError`s are collected; anything else is a bug and propagates.
    """
    done: list[tuple[T, R]] = []
    failed: list[Failure[T]] = []
    it = iter(items)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: dict[Future[R], T] = {}

        def fill() -> None:
            while len(pending) < concurrency * 2:
                if stop_on_first_failure and failed:
                    return
                try:
                    item = next(it)
                except StopIteration:
                    return
                pending[pool.submit(fn, item)] = item

        try:
            fill()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = pending.pop(fut)
                    try:
                        done.append((item, fut.result()))
                    except DrError as err:
                        failed.append(Failure(item, err))
                    progress.advance()
                fill()
        except BaseException:
            # Interrupted (a signal): start nothing more, and let what is
            # running end first, so the caller's cleanup sees every write made.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return done, failed
