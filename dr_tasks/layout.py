"""The bucket's layout: every key and id dr-tasks writes or reads, each formatter next to its parser.

Primary bucket (`bucket`, `prefix`, `snapshot_prefix` from the config):

    <prefix>...                                     live keys (the repo's state)
    <snapshot_prefix><id>/<rel>                     a snapshot's copies (`snapshot_dir`)
    <snapshot_prefix><id>.manifest.json             its manifest (`manifest_key`)
    .dr-tasks/lock.json                             the lease (`LOCK_KEY`)
    .dr-tasks/pins/<id>.json                        a pin marker (`pin_key`)
    .dr-tasks/rewrites.json                         ETags `dr.recover` gave objects it rewrote (`REWRITES_KEY`)

Backup bucket (`backup.bucket`, `backup.prefix`): the same keys under
`backup.prefix`, plus `<backup.prefix>.dr-tasks/backup-state.json`
(`backup_state_key`).

A snapshot id is `<UTC time, whole seconds>-<label>`, e.g.
`2026-04-15T18:00:00Z-pre-migration`. Every `parse_*` returns None for what
is not its own form, so `parse_x(x_key(...)) == ...` and a foreign key is
never mistaken for one of ours. Nothing here talks to a bucket or reads the
config beyond the prefixes it names.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

from .timeparse import iso_utc, parse_iso

if TYPE_CHECKING:
    from .config import DrConfig

# Keys the package keeps for itself in the primary bucket (lease, pins,
# rewrites, backup state). Live excludes them, like the snapshot prefix.
META_PREFIX = ".dr-tasks/"
LOCK_KEY = META_PREFIX + "lock.json"
REWRITES_KEY = META_PREFIX + "rewrites.json"
PIN_PREFIX = META_PREFIX + "pins/"
_PIN_SUFFIX = ".json"
STATE_NAME = META_PREFIX + "backup-state.json"

LABEL_RULE = "[a-z0-9][a-z0-9._-]{0,62}"
_LABEL_RE = re.compile(LABEL_RULE)
SNAPSHOT_ID_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)-(" + LABEL_RULE + ")")
MANIFEST_SUFFIX = ".manifest.json"


# ---------------------------------------------------------------- labels, ids
def is_label(text: object) -> bool:
    """A label a snapshot id can carry: LABEL_RULE, and no '..' (ids name directories)."""
    return isinstance(text, str) and _LABEL_RE.fullmatch(text) is not None and ".." not in text


def format_snapshot_id(ts: datetime, label: str) -> str:
    return f"{iso_utc(ts, whole_seconds=True)}-{label}"


def parse_snapshot_id(snap_id: object) -> tuple[datetime, str] | None:
    """(ts, label) of a well-formed snapshot id, else None."""
    m = SNAPSHOT_ID_RE.fullmatch(snap_id) if isinstance(snap_id, str) else None
    if m is None or ".." in m.group(2):
        return None
    try:
        return parse_iso(m.group(1)), m.group(2)
    except ValueError:
        return None


# ------------------------------------------------------------ snapshot keys
def snapshot_dir(cfg: DrConfig, snap_id: str) -> str:
    return f"{cfg.snapshot_prefix}{snap_id}/"


def parse_snapshot_dir(cfg: DrConfig, key: str) -> str | None:
    """The snapshot id of a directory `snapshot_dir` names (as a delimiter listing shows it), else None."""
    if not key.startswith(cfg.snapshot_prefix):
        return None
    name = key[len(cfg.snapshot_prefix) :].rstrip("/")
    return name if parse_snapshot_id(name) else None


def manifest_key(cfg: DrConfig, snap_id: str) -> str:
    return f"{cfg.snapshot_prefix}{snap_id}{MANIFEST_SUFFIX}"


def parse_manifest_key(cfg: DrConfig, key: str) -> str | None:
    """The snapshot id of a manifest key, else None (not a manifest, or not a snapshot id)."""
    if not key.startswith(cfg.snapshot_prefix) or not key.endswith(MANIFEST_SUFFIX):
        return None
    name = key[len(cfg.snapshot_prefix) : -len(MANIFEST_SUFFIX)]
    return name if parse_snapshot_id(name) else None


# ------------------------------------------------------------------ pins
def pin_key(snap_id: str) -> str:
    return f"{PIN_PREFIX}{snap_id}{_PIN_SUFFIX}"


def parse_pin_key(key: str) -> str | None:
    """The snapshot id a pin marker's key names, else None."""
    if not key.startswith(PIN_PREFIX) or not key.endswith(_PIN_SUFFIX):
        return None
    name = key[len(PIN_PREFIX) : -len(_PIN_SUFFIX)]
    return name if parse_snapshot_id(name) else None


# ----------------------------------------------------------- backup state
def backup_state_key(backup_prefix: str) -> str:
    """The backup state object of a backup written under `backup_prefix` of the backup bucket."""
    return backup_prefix + STATE_NAME


def parse_backup_state_key(key: str) -> str | None:
    """The backup prefix a backup state key lies under, else None."""
    prefix = key[: -len(STATE_NAME)] if key.endswith(STATE_NAME) else None
    # Prefixes end in '/' (or are empty): `x.dr-tasks/...` is not under one.
    return prefix if prefix is not None and (prefix == "" or prefix.endswith("/")) else None
