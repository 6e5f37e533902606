"""The progress callback operations report through, without knowing who shows it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    """What an operation may say while it works. Operations never print.

    A phase starts with a description and, when it is known, its total. A
    phase that lists before it knows how much there is says `listed` as
    objects come in, then `set_total` once the listing is done.
    """

    def start(self, description: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def listed(self, n: int = 1) -> None: ...

    def set_total(self, total: int) -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    """Says nothing: the default for the Python API and for non-terminals."""

    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def listed(self, n: int = 1) -> None:
        pass

    def set_total(self, total: int) -> None:
        pass

    def stop(self) -> None:
        pass


NULL_PROGRESS: Progress = NullProgress()


def counted(items: Iterable[T], progress: Progress) -> Iterator[T]:
    """`items`, saying `listed` for each one as it passes: a listing's count while it runs."""
    for item in items:
        progress.listed()
        yield item


def count_text(done: int, total: int | None, listed: int, seconds: float) -> str:
    """What a bar shows beside itself: a count while listing; done/total, rate and ETA once the total is known."""
    if total is None:
        if listed:
            return f"{listed:,} listed" + (f", {done:,} done" if done else "")
        return f"{done:,} done" if done else "listing"
    text = f"{done:,}/{total:,}"
    rate = done / seconds if seconds > 0 else 0.0
    if rate <= 0:
        return text + ", ETA ?"
    shown_rate = f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s"
    left = timedelta(seconds=round(max(0, total - done) / rate))
    return f"{text}, {shown_rate}, ETA {left}"
