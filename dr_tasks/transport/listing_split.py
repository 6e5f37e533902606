"""A listing in partitions listed at once, read back in key order (see `ListingMixin._listing`).

S3 lists about 1,000 keys a round trip; at a real region's latency one
stream of a million keys takes minutes. Disjoint prefixes can be listed at
the same time: `in_key_order` runs a few partitions on worker threads, each
holding a few pages ahead, and hands their pages on in the order of the
plan, so the caller sees the serial listing's sequence in bounded memory.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .model import ObjectVersion

# Pages a partition lists ahead of the reader: enough to keep its requests
# going while earlier partitions are read, bounded so memory is too.
PAGES_AHEAD = 2
# How often a worker blocked on a full buffer looks whether the reader has gone.
_POLL = 0.05


@dataclass(frozen=True)
class Partition:
    """The keys under `prefix` from `start` on (inclusive; "" for all)."""

    prefix: str
    start: str = ""


# A plan's items in key order: entries to hand on as they are, or a partition to list.
Item = list[ObjectVersion] | Partition


class _Done:
    """A partition's end in its buffer."""


@dataclass(frozen=True)
class _Failed:
    """A partition's error in its buffer, raised by the reader in the partition's turn."""

    error: BaseException


def _work(
    run: Callable[[Partition], Iterator[list[ObjectVersion]]],
    part: Partition,
    out: queue.Queue[object],
    stop: threading.Event,
) -> None:
    """List `part` into `out` until it ends, fails, or the reader has gone (`stop`)."""

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    try:
        for page in run(part):
            if not put(page):
                return
        put(_Done())
    except BaseException as err:  # handed to the reader, who raises it in this partition's turn
        put(_Failed(err))


def in_key_order(
    plan: Iterator[Item],
    run: Callable[[Partition], Iterator[list[ObjectVersion]]],
    width: int,
    pages_ahead: int = PAGES_AHEAD,
) -> Iterator[list[ObjectVersion]]:
    """The pages of `plan`, partitions listed by `run` at most `width` at a time, in the plan's order.

    A partition's error is raised when its turn comes, as the serial listing
    would have raised it there. Closing the iterator (or an exception in the
    reader, Ctrl-C) stops the workers and waits for them: no thread outlives it.
    """
    stop = threading.Event()

    pending: deque[list[ObjectVersion] | queue.Queue[object]] = deque()
    # Daemon threads, joined below: a reader dropped without being closed
    # (kept alive by a traceback) must not hold the interpreter's exit.
    workers: list[threading.Thread] = []
    try:
        running = 0
        items = iter(plan)
        exhausted = False
        while True:
            # Look ahead in the plan until `width` partitions run (entries between them wait in order).
            while not exhausted and running < width and len(pending) < 2 * width:
                item = next(items, None)
                if item is None:
                    exhausted = True
                elif isinstance(item, Partition):
                    out: queue.Queue[object] = queue.Queue(maxsize=pages_ahead)
                    worker = threading.Thread(target=_work, args=(run, item, out, stop), name="dr-listing", daemon=True)
                    worker.start()
                    workers.append(worker)
                    pending.append(out)
                    running += 1
                elif item:
                    pending.append(item)
            if not pending:
                return
            head = pending.popleft()
            if isinstance(head, list):
                yield head
                continue
            running -= 1
            workers = [w for w in workers if w.is_alive()]
            while True:
                got = head.get()
                if isinstance(got, _Done):
                    break
                if isinstance(got, _Failed):
                    raise got.error
                assert isinstance(got, list)
                yield got
    finally:
        stop.set()
        for w in workers:
            w.join()
