"""dr-tasks: make a repository mirrored to an S3-compatible bucket recoverable from any single failure.

Invoke users: `from dr_tasks import dr` and add it to the host's collection.
Python callers: every operation is a plain function taking a `DrConfig`
(see `load_config`) and returning a result object.
"""

from __future__ import annotations

from .config import DrConfig
from .config import load as load_config
from .errors import ConfigError, DrError
from .ops.catalog import find_snapshot, list_snapshots, show_snapshot
from .ops.drill import run_drill
from .ops.snapshot import take_snapshot
from .tasks import ns as dr

__all__ = [
    "ConfigError",
    "DrConfig",
    "DrError",
    "dr",
    "find_snapshot",
    "list_snapshots",
    "load_config",
    "run_drill",
    "show_snapshot",
    "take_snapshot",
]
