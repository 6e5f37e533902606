"""The progress callback operations report through, without knowing who shows it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What an operation may say while it works. Operations never print."""

    def start(self, description: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    """Says nothing: the default for the Python API and for non-terminals."""

    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def stop(self) -> None:
        pass


NULL_PROGRESS: Progress = NullProgress()
