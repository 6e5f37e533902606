"""The lease's records: the lease we hold, the holder we read, and the errors that stop an operation.

See `dr_tasks.lease` for how a lease is taken, renewed and released.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from time import monotonic as _monotonic
from time import time as _wall_clock
from typing import Any

from ..config import META_PREFIX
from ..errors import DrError
from ..index import iso, utc_now
from ..s3 import ObjectVersion
from .identity import host_identity

LOCK_KEY = META_PREFIX + "lock.json"
# How long a lease lives without renewal. A running holder renews every
# ttl / 3, so this bounds how long a crashed holder blocks others, not how long
# an operation may run.
DEFAULT_TTL = 600.0
# The winner of a read-back race lists once more after this long.
SETTLE_SECONDS = 0.5
# Rounds of inspect -> put -> confirm before giving up under heavy contention.
MAX_ROUNDS = 6
# No Linux pid is larger (pid_max's ceiling is 2**22); anything else in a body is garbage.
PID_MAX = 1 << 22

MODE_CONDITIONAL = "conditional-put"
MODE_READ_BACK = "read-back"
MODE_READ_BACK_UNVERSIONED = "read-back (unversioned: best effort)"

# (level, message): level is "note" or "warning". Operations never print; the
# task passes a callback that does.
Notify = Callable[[str, str], None]
# Read-only work an operation needs before its first write (listings, state
# reads); `hold_lease` runs it while the read-back settles. See `_read_back`.
Prepare = Callable[[], object]


def _quiet(level: str, message: str) -> None:
    pass


@dataclass(frozen=True)
class Holder:
    """Who holds the lease, as read from the bucket."""

    token: str
    owner: str
    host: str
    pid: int | None
    operation: str
    started: str
    ttl: float
    renewed: datetime
    expires: datetime
    version_ids: tuple[str | None, ...]
    # None while live; else why it is stale ("expired at ...", "pid 12 is not running on h").
    stale: str | None = None
    # Set when the holder is provably not running (see holder_gone): it is taken over without --break-lock.
    gone: bool = False

    def describe(self) -> str:
        pid = f" pid {self.pid}" if self.pid is not None else ""
        return f"{self.owner}@{self.host}{pid} for {self.operation} since {self.started} (expires {iso(self.expires)})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["renewed"] = iso(self.renewed)
        d["expires"] = iso(self.expires)
        d["version_ids"] = list(self.version_ids)
        return d


class LeaseLost(DrError):
    """The lease is no longer ours (taken over, or it could not be renewed in time): stop writing."""


def _elapsed_clocks() -> tuple[float, float]:
    """(monotonic, wall) now. The lease's age is the larger of the two differences: on
    Linux the monotonic clock stands still while the machine sleeps, and the wall
    clock can be set back; a laptop asleep past the ttl must not look fresh."""
    return _monotonic(), _wall_clock()


class LockHeld(DrError):
    """Another operation holds the lease (or it is stale and --break-lock was not given)."""

    def __init__(self, message: str, hint: str, holder: Holder) -> None:
        super().__init__(message, hint)
        self.holder = holder


@dataclass
class Lease:
    """A lease we hold. `mode` says how it was won; `notes`/`warnings` what the operator should know."""

    bucket: str
    key: str
    token: str
    owner: str
    host: str
    pid: int
    operation: str
    started: str
    ttl: float
    mode: str = MODE_CONDITIONAL
    version_ids: list[str | None] = field(default_factory=list)
    broke: Holder | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Set by the renewer when someone else's version became the oldest.
    lost: bool = False
    # Who holds it instead, once `lost`.
    lost_to: str | None = None
    # Set by the client that holds it: None while the lease is ours, else why not (see `ensure`).
    _confirm: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)

    def ensure(self, left: str, hint: str | None = None) -> None:
        """Raise `LeaseLost` unless this lease is still ours; call it before each write phase and the commit row.

        `left` names what the operation leaves behind if it stops here. No
        request while the last renewal (or the taking) is younger than half
        the ttl: nobody may take a live lease over, and it stays live for a
        whole ttl after a renewal. Older than that (a laptop asleep, a stalled
        renewer), it renews first, and a lease it cannot renew counts as lost.
        """
        why = self._confirm() if self._confirm is not None else ("it was taken over" if self.lost else None)
        if why is None:
            return
        raise LeaseLost(
            f"lease lost; nothing more written: {why} while {self.operation} ran; {left}",
            hint
            or "nothing else was changed after the lease was lost; once the other operation is done, "
            "run the same command again (it converges)",
        )

    @property
    def versioned(self) -> bool:
        return any(v not in (None, "null") for v in self.version_ids)

    def body(self) -> bytes:
        now = utc_now()
        return json.dumps(
            {
                "v": 1,
                "tool": "dr-tasks",
                "token": self.token,
                "owner": self.owner,
                "host": self.host,
                "pid": self.pid,
                "operation": self.operation,
                "started": self.started,
                "renewed": iso(now),
                "expires": iso(now + timedelta(seconds=self.ttl)),
                "ttl_seconds": self.ttl,
                **host_identity(),
            },
            separators=(",", ":"),
        ).encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "operation": self.operation,
            "started": self.started,
            "ttl": self.ttl,
            "mode": self.mode,
            "broke": self.broke.to_dict() if self.broke else None,
            "lost": self.lost,
        }


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
        # A lone surrogate ("\ud800") parses, then can be neither printed nor logged: unreadable too.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        return {}
    return data if isinstance(data, dict) else {}


def _token(entry: ObjectVersion, info: dict[str, Any] | None) -> str:
    token = (info or {}).get("token")
    # An unreadable body is its own holder, so it is reported (and can go stale) rather than ignored.
    return token if isinstance(token, str) and token else f"unreadable:{entry.version_id}:{entry.etag}"


def _ttl(info: dict[str, Any]) -> float:
    ttl = info.get("ttl_seconds")
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and 0 < ttl < 7 * 86400:
        return float(ttl)
    return DEFAULT_TTL


def _text(value: Any, default: str) -> str:
    if not isinstance(value, str) or not value:
        return default
    # The body is anyone's bytes: keep it to one short line in messages.
    value = value.replace("\n", " ").replace("\r", " ")
    return value if len(value) <= 80 else value[:77] + "..."


def _with_stale(holder: Holder, stale: str | None) -> Holder:
    return holder if stale is None else replace(holder, stale=stale)
