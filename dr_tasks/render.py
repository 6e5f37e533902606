"""Everything a task shows: tables and lines on stdout, progress on stderr, `--json`."""

from __future__ import annotations

import json
import os
import re
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


# ---------------------------------------------------------------------- commands as the user types them
# Operations and tasks write every command they suggest in one form,
# `inv dr.<task>`; the task layer says how it was called (`called_as`) and
# everything shown to the operator goes through `commands`, so a collection
# mounted as `disaster` says `inv disaster.<task>` and the `dr` program
# says `dr <task>`. User data (keys, diffs) is never rewritten.
CANONICAL = "inv dr."
_CANONICAL = re.compile(r"(?<![\w./-])inv dr\.(?=[A-Za-z])")
_call = {"program": "inv", "prefix": CANONICAL}


def use_program(program: str) -> None:
    """The program running the tasks: "inv" (the default) or "dr"."""
    _call["program"] = program
    _call["prefix"] = CANONICAL if program == "inv" else f"{program} "


def called_as(name: str | None) -> None:
    """The task's name as Invoke called it ("disaster.rollback"); None: not known, keep the default mount."""
    program = _call["program"]
    if name is None:
        collection = "dr." if program == "inv" else ""
    else:
        collection = name.rpartition(".")[0] + "." if "." in name else ""
    _call["prefix"] = f"{program} {collection}"


def command(task: str) -> str:
    """The command that runs `task` here: `inv dr.backup`, `inv disaster.backup`, `dr backup`."""
    return _call["prefix"] + task


def help_command(task: str) -> str:
    """The command that shows `task`'s help here: `inv --help dr.backup`, `dr --help backup`."""
    program, _, rest = command(task).partition(" ")
    return f"{program} --help {rest}"


def task_label(task: str) -> str:
    """How a task names itself in its messages: `dr.backup`, `disaster.backup`, `dr backup`."""
    shown = command(task)
    return shown[len("inv ") :] if _call["program"] == "inv" else shown


def commands(text: str) -> str:
    """`text` with each `inv dr.<task>` it suggests as the command that runs it here."""
    prefix = _call["prefix"]
    return text if prefix == CANONICAL else _CANONICAL.sub(lambda _: prefix, text)


# ---------------------------------------------------------------------- a closed stdout
# `dr.list | head -1`: the reader went away. A task finishes what it was doing
# (its writes, its index row, its post hooks) and drops the rest of its
# output, then exits 141 (128 + SIGPIPE, what a tool killed by SIGPIPE
# reports), with no traceback.
STDOUT_CLOSED = 141
_stdout = {"closed": False}


def stdout_gone() -> None:
    """Send the rest of stdout to /dev/null (also what Python flushes at exit) and remember it."""
    _stdout["closed"] = True
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's capture): nothing is flushed to it
        pass


def stdout_closed() -> bool:
    return _stdout["closed"]


def _write(text: str) -> None:
    if _stdout["closed"]:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        stdout_gone()


class _Stdout:
    """sys.stdout for rich: a closed pipe ends the output, not the task."""

    def write(self, text: str) -> int:
        _write(text)
        return len(text)

    def flush(self) -> None:
        _write("")

    def isatty(self) -> bool:
        return sys.stdout.isatty()

    def fileno(self) -> int:
        return sys.stdout.fileno()

    @property
    def encoding(self) -> str:
        return getattr(sys.stdout, "encoding", None) or "utf-8"


def stdout() -> Console:
    from rich.console import Console

    # soft_wrap and a wide page when piped keep ids and keys on one line for
    # grep and copy-paste. emoji=False: rich would turn a key such as
    # `notes/:fire:.md` into an emoji even with markup off.
    return Console(
        file=_Stdout(),  # type: ignore[arg-type]
        soft_wrap=True,
        highlight=False,
        emoji=False,
        width=None if sys.stdout.isatty() else 240,
    )


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def lines(text: Iterable[str]) -> None:
    """Plain lines on stdout, exactly as given: keys, paths and diffs are user data.

    No rich here: a render per line is slow for a report of thousands of lines
    (one per restored file; bench/README.md, finding 13), and rich reads
    `[...]` as markup and `:name:` as an emoji code.
    """
    _write("".join(line + "\n" for line in text))


def print_json(data: Any) -> None:
    _write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


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
        err.print(f"[yellow]warning:[/yellow] {escape(commands(line))}", markup=True, highlight=False)


def note(lines: Iterable[str]) -> None:
    lines = list(lines)
    if not lines:
        return
    err = stderr()
    for line in lines:
        err.print(f"note: {commands(line)}", markup=False, highlight=False)


def human_bytes(n: Any) -> str:
    """A byte count for people: 1023 bytes, 2.0 KiB, 1.5 MiB (`--json` keeps the integer)."""
    if not isinstance(n, int) or isinstance(n, bool):
        return "" if n is None else str(n)
    if abs(n) < 1024:
        return f"{n} bytes" if n != 1 else "1 byte"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        size /= 1024
        if abs(size) < 1024 or unit == "PiB":
            break
    return f"{size:.1f} {unit}"


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
