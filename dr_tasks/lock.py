"""The lease: one operation at a time changes the bucket (snapshot, prune; rollback and backup next).

The lease is an object in the primary bucket, `.dr-tasks/lock.json`, whose JSON
body names its holder: token, owner, host, pid, operation, started, expires.

Taking it:
1. HEAD the key (404: nobody holds it), else read its versions. A live
   holder means exit 1 with "held by <owner>@<host> pid <pid> for <op>
   since <time> (expires <time>)". A stale
   one (expired, or its pid is gone from this very host) is taken over only
   with `break_lock=True`, which is logged (a warning and a `lock-break` row in
   the index). A live lease is never broken: its holder renews it every
   `ttl / 3` seconds, so a holder whose machine died goes stale within `ttl`.
2. PutObject with `If-None-Match: *`. A 412 means someone else got there first.
3. PutObject with `If-None-Match: *` again, same bytes: the run-time probe.
   A store that honours the header answers 412 (the key exists: ours), and the
   lease is ours. A store that ignores it (Ceph RGW 16.2 on versioned buckets;
   DigitalOcean Spaces unconfirmed) answers 200, and the lease falls back to
   put-then-read-back, with a note:
   - versioned bucket: the OLDEST live version of the key wins. Every
     contender has written its own version, every contender lists the same
     versions in the same server order, so exactly one sees its own version
     oldest; the others delete their versions (by version id, leaving no
     delete marker) and report the winner. The winner lists once more after
     `SETTLE_SECONDS`, so a slower write that the server orders before ours is
     still seen.
   - unversioned bucket: the last writer wins a read-back, which is best
     effort only; the note says to enable versioning.

Staleness is judged on the server's clock (the Date header of the listing
against the LastModified of the holder's newest version plus its ttl), so a
skewed laptop clock neither breaks a live lease nor keeps a dead one alive.

Releasing deletes exactly our versions by version id (a plain DELETE on a
versioned bucket would leave a delete marker per run), or the object itself
on an unversioned bucket after checking it is still ours. It lists the key
first, to find versions of ours whose id a lost response hid, unless every
version id is known: the lease was won by a conditional PUT, or confirmed by
a read-back after PUTs that were each sent once, and never renewed through a
retry (see `_remove_own`). If the process dies
(kill -9, power), the lease stays until it expires: the next operator sees who
held it and breaks it with `--break-lock`.

Within one thread the lease is re-entrant: an operation that already holds it
(a rollback taking its safety snapshot) does not wait for itself.

The settle wait is not idle time: `hold_lease(..., prepare=fn)` runs the
operation's read-only planning (listings, state reads) while it passes, and
only then lists the lease once more. The lease is confirmed before the `with`
body, i.e. before the operation's first write, exactly as without `prepare`;
a run that loses the confirmation throws its plan away (it wrote nothing), and
a round that wins again plans again. See `_read_back`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from time import monotonic as _monotonic
from time import time as _wall_clock
from typing import Any

from .config import META_PREFIX, DrConfig
from .errors import DrError
from .index import Index, iso, utc_now
from .s3 import S3, ObjectVersion, S3Error

LOCK_KEY = META_PREFIX + "lock.json"
# How long a lease lives without renewal. A running holder renews every
# ttl / 3, so this bounds how long a crashed holder blocks others, not how long
# an operation may run.
DEFAULT_TTL = 600.0
# The winner of a read-back race lists once more after this long.
SETTLE_SECONDS = 0.5
# Rounds of inspect -> put -> confirm before giving up under heavy contention.
MAX_ROUNDS = 6
# Versions of the lease object read per inspection; more means something is badly wrong.
MAX_VERSIONS_READ = 50

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


def _owner() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): getuser raises KeyError or OSError
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, it is someone else's
        return True
    return True


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


class _Retry(Exception):
    """The lease object changed under an inspection; look again."""


class _LeaseClient:
    """Takes, renews and releases one lease. Not thread-safe beyond the renewer it starts."""

    def __init__(
        self,
        cfg: DrConfig,
        s3: S3,
        operation: str,
        break_lock: bool,
        ttl: float,
        notify: Notify,
        prepare: Prepare | None = None,
    ) -> None:
        self.cfg = cfg
        self.s3 = s3
        self.break_lock = break_lock
        self.notify = notify
        self.prepare = prepare
        # True once `prepare` ran in a read-back that then confirmed the lease.
        self.prepared = False
        # True while every version we wrote has a known id (see _remove_own).
        self._ids_complete = False
        # True once a PUT of ours was sent more than once (see _read_back).
        self._put_retried = False
        self.host = socket.gethostname()
        self.lease = Lease(
            bucket=cfg.bucket,
            key=LOCK_KEY,
            token=uuid.uuid4().hex,
            owner=_owner(),
            host=self.host,
            pid=os.getpid(),
            operation=operation,
            started=iso(utc_now()),
            ttl=float(ttl),
        )
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._mutex = threading.Lock()
        # When our newest lease write was sent: the lease is live for a ttl after it.
        self._written_at = _elapsed_clocks()
        self.lease._confirm = self.confirm

    @property
    def where(self) -> str:
        return f"s3://{self.cfg.bucket}/{LOCK_KEY}"

    def _say(self, level: str, message: str) -> None:
        (self.lease.notes if level == "note" else self.lease.warnings).append(message)
        self.notify(level, message)

    # ------------------------------------------------------------------ reading
    def inspect(self) -> Holder | None:
        """The current holder (the oldest live version's writer), or None when the lease is free."""
        entries, server_now = self.s3.key_versions(self.cfg.bucket, LOCK_KEY)
        now = server_now or utc_now()
        live: list[ObjectVersion] = []
        for e in entries:  # newest first; a delete marker hides everything older
            if e.is_delete_marker:
                break
            live.append(e)
        if not live:
            return None
        live.reverse()
        bodies: list[tuple[ObjectVersion, dict[str, Any] | None]] = []
        for e in live[:MAX_VERSIONS_READ]:
            if e.version_id not in (None, "null") and e.version_id in self.lease.version_ids:
                bodies.append((e, {"token": self.lease.token, "ttl_seconds": self.lease.ttl}))
                continue
            raw = self.s3.get_version_or_none(self.cfg.bucket, LOCK_KEY, e.version_id)
            if raw is None:
                if e is live[0]:
                    raise _Retry()  # the holder's version vanished: it was just released
                continue
            bodies.append((e, _parse(raw)))
        if not bodies:
            raise _Retry()
        first, info = bodies[0]
        token = _token(first, info)
        mine = [(e, b) for e, b in bodies if _token(e, b) == token]
        newest_info = mine[-1][1]
        ttl = _ttl(newest_info) if newest_info else DEFAULT_TTL
        renewed = max(e.last_modified for e, _ in mine)
        expires = renewed + timedelta(seconds=ttl)
        info = info or {}
        pid = info.get("pid")
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        host = _text(info.get("host"), "?")
        holder = Holder(
            token=token,
            owner=_text(info.get("owner"), "?") if info else "an unreadable lease object",
            host=host,
            pid=pid,
            operation=_text(info.get("operation"), "?"),
            started=_text(info.get("started"), iso(first.last_modified)),
            ttl=ttl,
            renewed=renewed,
            expires=expires,
            version_ids=tuple(e.version_id for e, _ in mine),
        )
        if token == self.lease.token:
            return holder
        stale = None
        if now > expires:
            stale = f"it expired at {iso(expires)}"
        elif host == self.host and pid is not None and pid != os.getpid() and not pid_alive(pid):
            stale = f"pid {pid} is not running on {host}"
        return _with_stale(holder, stale)

    # ------------------------------------------------------------------ taking
    def acquire(self) -> Lease:
        try:
            return self._acquire()
        except BaseException:
            # A failure after our PUT (a permanent error on the probe, Ctrl-C)
            # must not leave our version behind as a lease nobody holds.
            if self.lease.version_ids:
                with contextlib.suppress(DrError):
                    self._remove_own()
            raise

    def first_look(self) -> Holder | None:
        """`inspect`, after one HEAD: no current lease object means nobody holds the lease.

        The holder is the writer of the oldest version newer than the newest
        delete marker, so a key whose current version is missing or a delete
        marker (HEAD: 404) has none. A free lease, the common case, is then one
        HEAD instead of a ListObjectVersions, which some stores (moto) answer
        by copying every version in the bucket.
        """
        try:
            if not self.s3.exists(self.cfg.bucket, LOCK_KEY):
                return None
        except S3Error:
            # A HEAD's error has no body, so no error code ("403" where the
            # listing says SignatureDoesNotMatch): let the listing fail instead.
            pass
        return self.inspect()

    def _acquire(self) -> Lease:
        for _ in range(MAX_ROUNDS):
            try:
                holder = self.first_look()
            except _Retry:
                continue
            if holder is not None:
                if holder.token == self.lease.token:
                    # Our own write, e.g. a PUT retried after its first answer was lost.
                    self.lease.version_ids = list(dict.fromkeys([*self.lease.version_ids, *holder.version_ids]))
                    return self.lease
                if holder.stale and self.break_lock:
                    self._break(holder)
                    continue
                raise self._held(holder)
            self._written_at = _elapsed_clocks()
            outcome, vid, retried = self.s3.put_if_absent(self.cfg.bucket, LOCK_KEY, self.lease.body())
            self._put_retried |= retried
            if outcome == "exists":
                continue
            if outcome == "unsupported":
                r = self.s3.put_bytes(self.cfg.bucket, LOCK_KEY, self.lease.body(), "application/json")
                self._put_retried |= bool(r.get("ResponseMetadata", {}).get("RetryAttempts"))
                self.lease.version_ids.append(r.get("VersionId"))
                self._fall_back("rejects If-None-Match")
            else:
                self.lease.version_ids.append(vid)
                probe, vid2, retried = self.s3.put_if_absent(self.cfg.bucket, LOCK_KEY, self.lease.body())
                self._put_retried |= retried
                if probe == "exists":
                    self.lease.mode = MODE_CONDITIONAL
                    self._ids_complete = all(v not in (None, "null") for v in self.lease.version_ids)
                    return self.lease
                if vid2 is not None or probe == "written":
                    self.lease.version_ids.append(vid2)
                self._fall_back("ignores If-None-Match")
            if self._read_back():
                return self.lease
            # Lost the race: the next round names the winner.
        raise DrError(
            f"could not take the lease {self.where} after {MAX_ROUNDS} attempts: other operations keep taking it",
            "run again in a minute",
        )

    def _fall_back(self, what: str) -> None:
        if self.lease.versioned:
            self.lease.mode = MODE_READ_BACK
            self._say(
                "note",
                f"this store {what} on {self.where}; the lease falls back to put-then-read-back "
                "(the oldest version of the lease object wins)",
            )
        else:
            self.lease.mode = MODE_READ_BACK_UNVERSIONED
            self._say(
                "warning",
                f"this store {what} on {self.where} and the bucket is not versioned: the lease is best effort "
                "(last writer wins a read-back); run `inv dr.versioning --enable` for a safe lease",
            )

    def _read_back(self) -> bool:
        """Put-then-read-back: are we the holder now, and still after SETTLE_SECONDS?

        The caller's read-only `prepare` runs during the wait instead of a bare
        sleep. That changes nothing about who holds the lease: the second
        listing still comes at least SETTLE_SECONDS after the first, and the
        lease still counts as ours only once it confirms. What `prepare` read
        before that is as good as read under the lease: a confirmation means
        no contender's version is older than ours (a slower one the server
        orders before us shows up in it, which is what the wait is for), so no
        other run confirms the lease meanwhile, and only a run that confirmed
        it writes. When it does not confirm, the plan is dropped with our
        versions; `prepare` never writes, so there is nothing else to undo.
        """
        if not self._still_ours():
            return False
        first_look = time.monotonic()
        if self.prepare is not None:
            self.prepare()
        waited = time.monotonic() - first_look
        if waited < SETTLE_SECONDS:
            time.sleep(SETTLE_SECONDS - waited)
        # Also what makes a long `prepare` (the renewer is not running yet) safe:
        # had our lease gone stale meanwhile and been broken, this look sees it.
        if not self._still_ours():
            return False
        self.prepared = self.prepare is not None
        # Every PUT of ours went out once and answered with its version id, so
        # no version of ours exists unseen or can land later: the release
        # deletes them by id without listing first (one round trip less).
        self._ids_complete = (
            self.lease.versioned
            and not self._put_retried
            and all(v not in (None, "null") for v in self.lease.version_ids)
        )
        return True

    def _still_ours(self) -> bool:
        """One read-back: True while we hold the lease; else our versions go and False."""
        try:
            holder = self.inspect()
        except _Retry:
            holder = None
        if holder is None or holder.token != self.lease.token:
            self._remove_own()
            self.lease.version_ids.clear()
            return False
        return True

    def _held(self, holder: Holder) -> LockHeld:
        desc = holder.describe()
        if holder.stale:
            return LockHeld(
                f"the lease {self.where} is stale: held by {desc}; {holder.stale}",
                "run again with --break-lock to take it over (the break is logged in the index)",
                holder,
            )
        if self.break_lock:
            return LockHeld(
                f"refusing --break-lock: the lease is live, held by {desc}",
                f"a running operation renews its lease every {holder.ttl / 3:.0f}s; if its machine is gone, "
                f"wait until {iso(holder.expires)} and run again with --break-lock",
                holder,
            )
        return LockHeld(
            f"another dr operation is running: lease held by {desc}",
            f"wait for it to finish and run again; if that process is gone, run with --break-lock "
            f"once the lease has expired ({iso(holder.expires)})",
            holder,
        )

    def _break(self, holder: Holder) -> None:
        """Delete a stale holder's versions (never a live one's) and log it."""
        real = [v for v in holder.version_ids if v not in (None, "null")]
        if real:
            errors = self.s3.delete_versions(self.cfg.bucket, [(LOCK_KEY, v) for v in real])
        else:
            # Unversioned: check the object is still the stale holder's right before deleting it
            # (an unreadable body's token is made of its version id and ETag, so list it again).
            entries, _ = self.s3.key_versions(self.cfg.bucket, LOCK_KEY)
            current = next((e for e in entries if e.is_latest and not e.is_delete_marker), None)
            raw = self.s3.get_version_or_none(self.cfg.bucket, LOCK_KEY, None) if current else None
            if current is None or raw is None or _token(current, _parse(raw)) != holder.token:
                return  # gone or replaced meanwhile: the next round looks again
            errors = self.s3.delete_keys(self.cfg.bucket, [LOCK_KEY])
        if errors:
            raise DrError(f"could not break the stale lease {self.where}: {errors[0].message}")
        self.lease.broke = holder
        self._say("warning", f"broke a stale lease held by {holder.describe()} ({holder.stale})")
        ts = utc_now()
        Index(self.cfg.index_path).append(
            {
                "kind": "lock-break",
                "id": f"{iso(ts)}-{self.lease.operation}",
                "ts": iso(ts),
                "bucket": self.cfg.bucket,
                "key": LOCK_KEY,
                "operation": self.lease.operation,
                "by": f"{self.lease.owner}@{self.lease.host} pid {self.lease.pid}",
                "reason": holder.stale,
                "broken": holder.to_dict(),
            }
        )

    # ------------------------------------------------------------------ holding
    def start_renewing(self) -> None:
        self._renewer = threading.Thread(target=self._renew_loop, name="dr-lease-renewer", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        interval = max(self.lease.ttl / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    return
            except DrError as err:
                # Keep trying: the lease only goes stale after a whole ttl.
                self._say("warning", f"could not renew the lease {self.where}: {err.message}")

    def renew(self) -> bool:
        """Write a fresh expiry; False (and `lost`) when someone else holds the lease now."""
        with self._mutex:
            if self._stop.is_set():
                return False
            try:
                holder = self.inspect()
            except _Retry:
                holder = None
            if holder is None or holder.token != self.lease.token:
                self.lease.lost = True
                who = holder.describe() if holder else "nobody"
                self.lease.lost_to = holder.describe() if holder else None
                self._say("warning", f"the lease {self.where} was taken over while {self.lease.operation} ran: {who}")
                return False
            written_at = _elapsed_clocks()
            r = self.s3.put_bytes(self.cfg.bucket, LOCK_KEY, self.lease.body(), "application/json")
            # Each renewal is one more version of ours on a versioned bucket;
            # they all go at release. Overwriting the oldest would hand the
            # "oldest version" to a contender.
            self.lease.version_ids.append(r.get("VersionId"))
            if r.get("ResponseMetadata", {}).get("RetryAttempts") or r.get("VersionId") in (None, "null"):
                # A retried PUT may have written a version whose id we never saw.
                self._ids_complete = False
            self._written_at = written_at
            return True

    def confirm(self) -> str | None:
        """None while the lease is ours, else why not; `Lease.ensure` asks this.

        The renewer's last result decides without a request while our newest
        write is younger than ttl / 2 (it renews every ttl / 3, so that is the
        normal case). Older, the lease may have expired and been broken, so
        this renews now: a renewal looks first, and finds a takeover.
        """
        if self.lease.lost:
            return self._lost_why()
        mono, wall = _elapsed_clocks()
        age = max(mono - self._written_at[0], wall - self._written_at[1])
        if age < self.lease.ttl / 2:
            return None
        try:
            if self.renew():
                return None
        except DrError as err:
            return (
                f"it could not be renewed ({err.message}) {age:.0f}s after it was last written "
                f"(ttl {self.lease.ttl:.0f}s)"
            )
        if self.lease.lost:
            return self._lost_why()
        return "it was released"

    def _lost_why(self) -> str:
        if self.lease.lost_to:
            return f"it was taken over by {self.lease.lost_to}"
        return "it was deleted by another operation (broken as stale, then released)"

    # ------------------------------------------------------------------ releasing
    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        with self._mutex:
            try:
                self._remove_own()
            except DrError as err:
                self._say(
                    "warning",
                    f"could not remove the lease {self.where}: {err.message}; it goes stale by itself within "
                    f"{self.lease.ttl:.0f}s, then the next operation needs --break-lock",
                )

    def _remove_own(self) -> None:
        """Delete every version of the lease object that we wrote, and nothing else."""
        if self._ids_complete:
            # Won by a conditional PUT on a versioned bucket (a retried
            # If-None-Match PUT that had landed comes back 412 and makes
            # _acquire adopt it from a listing), or confirmed by a read-back
            # after PUTs sent once each; renewed
            # without a retry since: every version we wrote is one whose id we
            # know. Delete those by id, without listing first.
            ids = list(dict.fromkeys(v for v in self.lease.version_ids if v not in (None, "null")))
            errors = self.s3.delete_versions(self.cfg.bucket, [(LOCK_KEY, v) for v in ids])
            if errors:
                raise DrError(f"could not delete the lease: {errors[0].message}")
            return
        entries, _ = self.s3.key_versions(self.cfg.bucket, LOCK_KEY)
        ours_versioned: list[str] = []
        ours_plain = False
        for e in entries:
            if e.is_delete_marker:
                continue
            if e.version_id not in (None, "null") and e.version_id in self.lease.version_ids:
                ours_versioned.append(e.version_id)
                continue
            raw = self.s3.get_version_or_none(self.cfg.bucket, LOCK_KEY, e.version_id)
            if raw is None or _parse(raw).get("token") != self.lease.token:
                continue
            if e.version_id in (None, "null"):
                ours_plain = True
            else:
                ours_versioned.append(e.version_id)
        errors = []
        if ours_versioned:
            errors += self.s3.delete_versions(self.cfg.bucket, [(LOCK_KEY, v) for v in ours_versioned])
        if ours_plain:
            errors += self.s3.delete_keys(self.cfg.bucket, [LOCK_KEY])
        if errors:
            raise DrError(f"could not delete the lease: {errors[0].message}")


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
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


# One lease per (endpoint, bucket) per thread: nested hold_lease calls reuse it.
_local = threading.local()


def read_lease(cfg: DrConfig, s3: S3 | None = None) -> Holder | None:
    """Who holds the lease right now (None when free). For status displays; takes nothing."""
    client = _LeaseClient(cfg, s3 or S3(cfg.endpoint, cfg.concurrency), "read", False, DEFAULT_TTL, _quiet)
    for _ in range(MAX_ROUNDS):
        try:
            return client.inspect()
        except _Retry:
            continue
    return None


def check_lease(cfg: DrConfig, s3: S3 | None = None, operation: str = "operation") -> None:
    """Raise `LockHeld`, as `hold_lease` would, when another operation holds the lease (live or stale); take nothing.

    For a run that turns out to have nothing to write (a no-change backup): it
    needs no lease, but it still stops, with the same message, where taking
    the lease would have stopped it. One HEAD while the lease is free.
    """
    if (cfg.endpoint.endpoint_url, cfg.bucket) in _local.__dict__.get("leases", {}):
        return  # this thread holds it (re-entrant, as in hold_lease)
    client = _LeaseClient(cfg, s3 or S3(cfg.endpoint, cfg.concurrency), operation, False, DEFAULT_TTL, _quiet)
    for _ in range(MAX_ROUNDS):
        try:
            holder = client.first_look()
        except _Retry:
            continue  # a holder's version vanished while we read it: look again
        if holder is not None:
            raise client._held(holder)
        return
    # Still changing after MAX_ROUNDS looks: as read_lease, nobody to name.


@contextlib.contextmanager
def hold_lease(
    cfg: DrConfig,
    s3: S3 | None = None,
    operation: str = "operation",
    *,
    break_lock: bool = False,
    ttl: float = DEFAULT_TTL,
    notify: Notify | None = None,
    prepare: Prepare | None = None,
) -> Iterator[Lease]:
    """Hold the bucket's lease for the body of the `with`; raises `LockHeld` (a DrError) when someone else has it.

    The lease is renewed in the background every `ttl / 3` seconds and released
    on the way out, after success and after failure alike.

    `prepare`, when given, is the operation's read-only planning, run before
    the `with` body: during the read-back's settle wait on stores that need
    one, else right after the lease is won. It may run more than once (a round
    that loses the confirmation drops its result): the last run is the one
    that counts, so it should store its result where the body finds it. It
    must not write to the bucket.
    """
    held: dict[tuple[str | None, str], Lease] = _local.__dict__.setdefault("leases", {})
    slot = (cfg.endpoint.endpoint_url, cfg.bucket)
    if slot in held:
        if prepare is not None:
            prepare()
        yield held[slot]
        return
    client = _LeaseClient(
        cfg, s3 or S3(cfg.endpoint, cfg.concurrency), operation, break_lock, ttl, notify or _quiet, prepare
    )
    lease = client.acquire()
    held[slot] = lease
    stopped = False
    try:
        client.start_renewing()
        if prepare is not None and not client.prepared:
            # Won without a settle wait (a conditional PUT): plan under the
            # renewed lease, as the body would.
            prepare()
        yield lease
    except LeaseLost:
        stopped = True  # the operation stopped when it saw the loss, and says what it left
        raise
    finally:
        del held[slot]
        client.release()
        if lease.lost and not stopped:
            client._say(
                "warning",
                f"{operation} ran without the lease for part of its run (it was taken over); check its result",
            )
