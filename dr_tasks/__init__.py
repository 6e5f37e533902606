"""dr-tasks: make a repository mirrored to an S3-compatible bucket recoverable from any single failure.

Invoke users: `from dr_tasks import dr` and add it to the host's collection.
Python callers: every operation is a plain function taking a `DrConfig`
(see `load_config`) and returning a result object.
"""

from __future__ import annotations

from .config import DrConfig
from .config import load as load_config
from .errors import ConfigError, DrError
from .lock import Lease, LockHeld, hold_lease, read_lease
from .ops.backup import BackupResult, MirrorNeedsApply, run_backup
from .ops.catalog import find_snapshot, list_snapshots, show_snapshot
from .ops.drill import run_drill
from .ops.freshness import FreshnessResult, check_freshness
from .ops.prune import KeepRules, PinResult, PruneResult, pin_snapshot, plan_prune, prune
from .ops.reindex import ReindexResult, reindex
from .ops.restore import RestoreResult, restore_at
from .ops.rollback import RollbackPlan, RollbackResult, apply_rollback, plan_rollback
from .ops.snapshot import take_snapshot
from .ops.verify import VerifyResult, deep_verify, run_verify
from .ops.versioning import VersioningResult, enable_versioning, versioning_status
from .tasks import ns as dr
from .timeparse import parse_ts

__all__ = [
    "BackupResult",
    "ConfigError",
    "DrConfig",
    "DrError",
    "FreshnessResult",
    "KeepRules",
    "Lease",
    "LockHeld",
    "MirrorNeedsApply",
    "PinResult",
    "PruneResult",
    "ReindexResult",
    "RestoreResult",
    "RollbackPlan",
    "RollbackResult",
    "VerifyResult",
    "VersioningResult",
    "apply_rollback",
    "check_freshness",
    "deep_verify",
    "dr",
    "enable_versioning",
    "find_snapshot",
    "hold_lease",
    "list_snapshots",
    "load_config",
    "parse_ts",
    "pin_snapshot",
    "plan_prune",
    "plan_rollback",
    "prune",
    "read_lease",
    "reindex",
    "restore_at",
    "run_backup",
    "run_drill",
    "run_verify",
    "show_snapshot",
    "take_snapshot",
    "versioning_status",
]
