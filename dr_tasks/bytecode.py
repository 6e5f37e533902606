"""Let this package cache its own bytecode when it runs under `inv`.

Invoke turns bytecode writing off for the whole process (`sys.dont_write_bytecode`,
unless `inv --write-pyc`) so that a host repo gets no `__pycache__` for its
tasks.py. Every module imported after that compiles from source and is thrown
away: for an editable install (the README's `pip install -e`), whose modules
have no `.pyc` from pip, that was ≈ 80 ms of every `inv dr.*` run (measured on
`dr.restore` of one unit: 0.56 s → 0.48 s median, 12 alternating runs each).

Writing is let through only while our code runs (the collection's import, a
task's body: that is when our modules load), and only when the switch is
Invoke's: an interpreter started with `-B` or `PYTHONDONTWRITEBYTECODE` keeps
its choice. The host's tasks.py is compiled before it imports us, so it still
gets no `__pycache__`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def caching_own_bytecode() -> Iterator[None]:
    """Inside this block modules may write their `.pyc`, unless the user asked for none."""
    if sys.flags.dont_write_bytecode or not sys.dont_write_bytecode:
        yield
        return
    sys.dont_write_bytecode = False
    try:
        yield
    finally:
        sys.dont_write_bytecode = True
