"""dr-tasks: make a repository mirrored to an S3-compatible bucket recoverable from any single failure.

Invoke users: `from dr_tasks import dr` and add it to the host's collection
(and, to have Invoke's own config errors as one line, call
`friendly_config_errors()` at the top of tasks.py: it rebinds a few Invoke
functions for the process, so it is the host's choice; importing changes nothing).
Python callers: every operation is a plain function taking a `DrConfig`
(see `load_config`) and returning a result object. Every operation that
writes takes the bucket's lease itself; a caller that already holds it (see
`hold_lease`) passes that `Lease` as `lease=`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .config import DrConfig
    from .config import load as load_config
    from .errors import ConfigError, DrError
    from .internals import friendly_invoke_config_errors as friendly_config_errors
    from .lease import Lease, LeaseLost, LockHeld, check_lease, hold_lease, read_lease
    from .ops.backup import BackupOptions, BackupResult, run_backup
    from .ops.backup_plan import MirrorNeedsApply
    from .ops.catalog import find_snapshot, list_snapshots, show_snapshot
    from .ops.drill import run_drill
    from .ops.drill_live import LiveDrillOptions, LiveDrillResult, run_live_drill
    from .ops.freshness import FreshnessResult, check_freshness
    from .ops.prune import KeepRules, PinResult, PruneResult, pin_snapshot, plan_prune, prune
    from .ops.recover import RecoverResult, recover_from_backup
    from .ops.reindex import ReindexResult, reindex
    from .ops.restore import RestoreOptions, RestoreResult, restore_at, run_restore
    from .ops.rollback import RollbackPlan, RollbackResult, apply_rollback, plan_rollback
    from .ops.snapshot import SnapshotPlan, plan_snapshot, take_snapshot
    from .ops.verify import VerifyResult, deep_verify, run_verify
    from .ops.versioning import VersioningResult, enable_versioning, versioning_status
    from .tasks import ns as dr
    from .timeparse import parse_ts

# The exports load on first use (PEP 562 `__getattr__` below). `inv` imports
# the host's tasks.py (`from dr_tasks import dr`) at the start of every run;
# importing every operation, and boto3 with them, there was a large share of
# each run while a task needs one operation (the tasks import theirs in their
# body; bench/README.md, findings 10 and 15).
# name -> (module relative to this package, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "BackupOptions": (".ops.backup", "BackupOptions"),
    "BackupResult": (".ops.backup", "BackupResult"),
    "ConfigError": (".errors", "ConfigError"),
    "DrConfig": (".config", "DrConfig"),
    "DrError": (".errors", "DrError"),
    "FreshnessResult": (".ops.freshness", "FreshnessResult"),
    "KeepRules": (".ops.prune", "KeepRules"),
    "Lease": (".lease", "Lease"),
    "LeaseLost": (".lease", "LeaseLost"),
    "LockHeld": (".lease", "LockHeld"),
    "MirrorNeedsApply": (".ops.backup_plan", "MirrorNeedsApply"),
    "PinResult": (".ops.prune", "PinResult"),
    "PruneResult": (".ops.prune", "PruneResult"),
    "RecoverResult": (".ops.recover", "RecoverResult"),
    "ReindexResult": (".ops.reindex", "ReindexResult"),
    "RestoreOptions": (".ops.restore", "RestoreOptions"),
    "RestoreResult": (".ops.restore", "RestoreResult"),
    "RollbackPlan": (".ops.rollback", "RollbackPlan"),
    "RollbackResult": (".ops.rollback", "RollbackResult"),
    "VerifyResult": (".ops.verify", "VerifyResult"),
    "VersioningResult": (".ops.versioning", "VersioningResult"),
    "apply_rollback": (".ops.rollback", "apply_rollback"),
    "check_freshness": (".ops.freshness", "check_freshness"),
    "check_lease": (".lease", "check_lease"),
    "deep_verify": (".ops.verify", "deep_verify"),
    "dr": (".tasks", "ns"),
    "enable_versioning": (".ops.versioning", "enable_versioning"),
    "find_snapshot": (".ops.catalog", "find_snapshot"),
    "friendly_config_errors": (".internals", "friendly_invoke_config_errors"),
    "hold_lease": (".lease", "hold_lease"),
    "list_snapshots": (".ops.catalog", "list_snapshots"),
    "load_config": (".config", "load"),
    "parse_ts": (".timeparse", "parse_ts"),
    "pin_snapshot": (".ops.prune", "pin_snapshot"),
    "plan_prune": (".ops.prune", "plan_prune"),
    "plan_rollback": (".ops.rollback", "plan_rollback"),
    "prune": (".ops.prune", "prune"),
    "read_lease": (".lease", "read_lease"),
    "recover_from_backup": (".ops.recover", "recover_from_backup"),
    "reindex": (".ops.reindex", "reindex"),
    "restore_at": (".ops.restore", "restore_at"),
    "run_backup": (".ops.backup", "run_backup"),
    "run_restore": (".ops.restore", "run_restore"),
    "run_drill": (".ops.drill", "run_drill"),
    "run_live_drill": (".ops.drill_live", "run_live_drill"),
    "LiveDrillOptions": (".ops.drill_live", "LiveDrillOptions"),
    "LiveDrillResult": (".ops.drill_live", "LiveDrillResult"),
    "run_verify": (".ops.verify", "run_verify"),
    "show_snapshot": (".ops.catalog", "show_snapshot"),
    "take_snapshot": (".ops.snapshot", "take_snapshot"),
    "plan_snapshot": (".ops.snapshot", "plan_snapshot"),
    "SnapshotPlan": (".ops.snapshot", "SnapshotPlan"),
    "versioning_status": (".ops.versioning", "versioning_status"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    from .internals import caching_own_bytecode

    with caching_own_bytecode():
        value = getattr(importlib.import_module(module, __name__), attr)
    # Cache it as a plain attribute: later lookups no longer come through here.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BackupOptions",
    "BackupResult",
    "ConfigError",
    "DrConfig",
    "DrError",
    "FreshnessResult",
    "KeepRules",
    "Lease",
    "LeaseLost",
    "LiveDrillOptions",
    "LiveDrillResult",
    "LockHeld",
    "MirrorNeedsApply",
    "PinResult",
    "PruneResult",
    "RecoverResult",
    "ReindexResult",
    "RestoreOptions",
    "RestoreResult",
    "RollbackPlan",
    "RollbackResult",
    "SnapshotPlan",
    "VerifyResult",
    "VersioningResult",
    "apply_rollback",
    "check_freshness",
    "check_lease",
    "deep_verify",
    "dr",
    "enable_versioning",
    "find_snapshot",
    "friendly_config_errors",
    "hold_lease",
    "list_snapshots",
    "load_config",
    "parse_ts",
    "pin_snapshot",
    "plan_prune",
    "plan_rollback",
    "plan_snapshot",
    "prune",
    "read_lease",
    "recover_from_backup",
    "reindex",
    "restore_at",
    "run_backup",
    "run_drill",
    "run_live_drill",
    "run_restore",
    "run_verify",
    "show_snapshot",
    "take_snapshot",
    "versioning_status",
]
