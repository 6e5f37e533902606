"""Everything a task shows: tables and lines on stdout, progress on stderr, `--json`."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .progress import NULL_PROGRESS
from .progress import Progress as ProgressProtocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

# rich is imported where it is used: importing it is part of every task's
# start, and a task whose output is one line or JSON never needs it.


def stdout() -> Console:
    from rich.console import Console

    # soft_wrap and a wide page when piped keep ids and keys on one line for
    # grep and copy-paste. emoji=False: rich would turn a key such as
    # `notes/:fire:.md` into an emoji even with markup off.
    return Console(soft_wrap=True, highlight=False, emoji=False, width=None if sys.stdout.isatty() else 240)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def lines(text: Iterable[str]) -> None:
    """Plain lines on stdout, exactly as given: keys, paths and diffs are user data.

    No rich here: a render per line is slow for a report of thousands of lines
    (one per restored file; bench/README.md, finding 13), and rich reads
    `[...]` as markup and `:name:` as an emoji code.
    """
    sys.stdout.write("".join(line + "\n" for line in text))
    sys.stdout.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def escape(text: str) -> str:
    """`text` as rich markup that shows it literally (user data: keys, index lines)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def warn(lines: Iterable[str]) -> None:
    lines = list(lines)
    if not lines:
        return
    err = stderr()
    for line in lines:
        # Lines carry user data (index lines, keys): escape them, or "[/]" in a
        # garbage line is read as markup and crashes the task.
        err.print(f"[yellow]warning:[/yellow] {escape(line)}", markup=True, highlight=False)


def note(lines: Iterable[str]) -> None:
    lines = list(lines)
    if not lines:
        return
    err = stderr()
    for line in lines:
        err.print(f"note: {line}", markup=False, highlight=False)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    # Text, not str: cells hold index data, which rich would otherwise parse as markup.
    t = Table(title=Text(title), title_justify="left")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*(Text("" if v is None else str(v)) for v in row))
    stdout().print(t)


class RichProgress:
    """A rich progress bar on stderr; silent when stderr is not a terminal.

    Beside the bar: a count while listing, then done/total, rate and ETA
    once the total is known (`progress.count_text`).
    """

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True, emoji=False)
        self._progress: Progress | None = None
        self._task: Any = None
        self._listed = 0
        self._lock = threading.Lock()

    def start(self, description: str, total: int | None = None) -> None:
        import time

        from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
        from rich.text import Text

        from .progress import count_text

        self.stop()
        self._listed = 0
        begun = time.monotonic()
        owner = self

        class CountColumn(ProgressColumn):
            def render(self, task: Any) -> Text:
                total = None if task.total is None else int(task.total)
                return Text(count_text(int(task.completed), total, owner._listed, time.monotonic() - begun))

        self._progress = Progress(
            # Descriptions name buckets and prefixes: not markup.
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            CountColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def listed(self, n: int = 1) -> None:
        # Two listings may count at once (a backup lists both regions).
        with self._lock:
            self._listed += n

    def set_total(self, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def progress_for_terminal() -> ProgressProtocol:
    return RichProgress() if sys.stderr.isatty() else NULL_PROGRESS
