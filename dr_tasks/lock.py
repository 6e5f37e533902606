"""The lease: one operation at a time changes the bucket (snapshot, prune; rollback and backup next).

The lease is an object in the primary bucket, `.dr-tasks/lock.json`, whose JSON
body names its holder: token, owner, host, pid, operation, started, expires,
and where that pid lives (machine id, boot id, pid namespace, the process's
start time; see `host_identity`).

Taking it:
1. HEAD the key (404: nobody holds it), else read its versions. A live
   holder means exit 1 with "held by <owner>@<host> pid <pid> for <op>
   since <time> (expires <time>)". A holder that is provably not running
   (same machine id, boot and pid namespace as ours, and its pid gone or now
   another process: `holder_gone`) is taken over at once, without a flag; a
   hostname proves nothing. A lease that merely expired is taken over only
   with `break_lock=True`. Either is logged (a warning and a `lock-break` row
   in the index). A live lease is never broken: its holder renews it every
   `ttl / 3` seconds, so a holder whose machine died goes stale within `ttl`.
2. PutObject with `If-None-Match: *`. A 412 means someone else got there first.
3. PutObject with `If-None-Match: *` again, same bytes: the run-time probe.
   A store that honours the header answers 412 (the key exists); a store
   that ignores it (Ceph RGW 16.2 on versioned buckets;
   DigitalOcean Spaces unconfirmed) answers 200, and the lease falls back to
   put-then-read-back, with a note. Either way the lease is ours only once
   it reads back as ours (a 412 says the key exists, not whose version
   counts: a create that is not atomic lets two through):
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
against the LastModified of the holder's newest version plus its ttl, however
many renewals came before it), so a skewed laptop clock neither breaks a live
lease nor keeps a dead one alive.

Releasing deletes exactly our versions by version id (a plain DELETE on a
versioned bucket would leave a delete marker per run), or the object itself
on an unversioned bucket after checking it is still ours. It lists the key
first, to find versions of ours whose id a lost response hid, unless every
version id is known: the lease was confirmed by a read-back after PUTs that
were each sent once, and never renewed through a retry (see `_remove_own`). If the process dies
(kill -9, power), the lease stays: the next run on the same machine, boot and
pid namespace takes it over at once; anywhere else it stays until it expires,
and the next operator sees who held it and breaks it with `--break-lock`.

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
from typing import Any

from .config import DrConfig
from .errors import DrError
from .index import Index, utc_now
from .layout import LOCK_KEY
from .s3 import S3, ObjectVersion, S3Error
from .timeparse import iso_utc

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


# Where this machine's identity is read from (module-level so a test can point them elsewhere).
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
PID_NS_LINK = "/proc/self/ns/pid"
PROC_DIR = "/proc"


def _first_line(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            line = f.readline().strip()
    except (OSError, ValueError):
        return None
    return line or None


def _proc_start(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks since boot, state letter) of `pid`, or None when no such process."""
    try:
        with open(f"{PROC_DIR}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19]), fields[0].decode("ascii", "replace")
    except (IndexError, ValueError):
        return None


def host_identity() -> dict[str, Any]:
    """What makes a pid in a lease body comparable with ours: machine, boot, pid namespace, process start.

    A hostname is no identity (containers share them), so only a body whose
    machine id, boot id and pid namespace all equal ours is judged by its pid;
    the start time tells a reused pid from the holder. A machine without
    /etc/machine-id (minimal containers) falls back to dbus's copy, else
    records none: the boot id, random per kernel boot, still tells kernels
    apart, and two bodies without a machine id match only on it.
    """
    machine_id = next((m for m in map(_first_line, MACHINE_ID_FILES) if m), None)
    try:
        pid_ns: str | None = os.readlink(PID_NS_LINK)
        if os.readlink(f"{PROC_DIR}/self") != str(os.getpid()):
            # This /proc was mounted for another pid namespace (unshare without
            # a remount): its pids are not ours, so they prove nothing.
            pid_ns = None
    except OSError:
        pid_ns = None
    start = _proc_start(os.getpid())
    return {
        "machine_id": machine_id,
        "boot_id": _first_line(BOOT_ID_FILE),
        "pid_ns": pid_ns,
        "pid_start": start[0] if start else None,
    }


def holder_gone(info: dict[str, Any], pid: int | None) -> str | None:
    """Why the holder of a lease body is provably not running, or None when that cannot be proven.

    Proof needs this machine, this boot and this pid namespace, all three
    recorded in the body and equal to ours; then the pid is gone, a zombie,
    or a process that started at another time than the holder.
    """
    if pid is None:
        return None
    ours = host_identity()
    if not ours["boot_id"] or not ours["pid_ns"]:
        return None  # no /proc here: nothing to compare with
    for name in ("machine_id", "boot_id", "pid_ns"):
        if info.get(name) != ours[name]:
            return None
    started = info.get("pid_start")
    if not isinstance(started, int) or isinstance(started, bool):
        return None
    now = _proc_start(pid)
    where = f"this machine (boot {str(ours['boot_id'])[:8]}, same pid namespace)"
    if now is None:
        return f"pid {pid} is not running on {where}"
    if now[1] in ("Z", "X"):
        return f"pid {pid} has exited on {where}"
    if now[0] != started:
        return f"pid {pid} on {where} is another process now (the holder's has exited)"
    return None


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
        expires = iso_utc(self.expires, whole_seconds=True)
        return f"{self.owner}@{self.host}{pid} for {self.operation} since {self.started} (expires {expires})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["renewed"] = iso_utc(self.renewed, whole_seconds=True)
        d["expires"] = iso_utc(self.expires, whole_seconds=True)
        d["version_ids"] = list(self.version_ids)
        return d


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
                "renewed": iso_utc(now, whole_seconds=True),
                "expires": iso_utc(now + timedelta(seconds=self.ttl), whole_seconds=True),
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
            started=iso_utc(utc_now(), whole_seconds=True),
            ttl=float(ttl),
        )
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._mutex = threading.Lock()

    @property
    def where(self) -> str:
        return f"s3://{self.cfg.bucket}/{LOCK_KEY}"

    def _say(self, level: str, message: str) -> None:
        (self.lease.notes if level == "note" else self.lease.warnings).append(message)
        self.notify(level, message)

    # ------------------------------------------------------------------ reading
    def inspect(self, full: bool = False) -> Holder | None:
        """The current holder (the oldest live version's writer), or None when the lease is free.

        The holder's newest renewal is its newest version, however many it
        wrote: the listing is read newest first until a body with the holder's
        token, usually the first. Only `full` (a break, which must delete
        every version of the holder) reads every body.
        """
        entries, server_now = self.s3.key_versions(self.cfg.bucket, LOCK_KEY)
        now = server_now or utc_now()
        live: list[ObjectVersion] = []
        for e in entries:  # newest first; a delete marker hides everything older
            if e.is_delete_marker:
                break
            live.append(e)
        if not live:
            return None
        first = live[-1]
        info = self._body(first)
        if info is None:
            raise _Retry()  # the holder's version vanished: it was just released
        token = _token(first, info)
        mine = [first]
        newest_info = info
        for e in live[:-1]:  # newest first
            body = self._body(e)
            if body is None or _token(e, body) != token:
                continue
            if not mine[1:]:
                newest_info = body
            mine.append(e)
            if not full and not self._known(e):
                break  # the newest renewal; older ones change nothing but the break's list
        ttl = _ttl(newest_info)
        renewed = max(e.last_modified for e in mine)
        expires = renewed + timedelta(seconds=ttl)
        pid = info.get("pid")
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < PID_MAX else None
        host = _text(info.get("host"), "?")
        holder = Holder(
            token=token,
            owner=_text(info.get("owner"), "?") if info else "an unreadable lease object",
            host=host,
            pid=pid,
            operation=_text(info.get("operation"), "?"),
            started=_text(info.get("started"), iso_utc(first.last_modified, whole_seconds=True)),
            ttl=ttl,
            renewed=renewed,
            expires=expires,
            version_ids=tuple(e.version_id for e in reversed(live) if any(e is m for m in mine)),
        )
        if token == self.lease.token:
            return holder
        stale = f"it expired at {iso_utc(expires, whole_seconds=True)}" if now > expires else None
        # Before its expiry a lease is stale only when its holder is provably not
        # running: this machine, boot and pid namespace, and that pid is gone.
        gone = holder_gone(info, pid)
        if gone is not None:
            return replace(holder, stale=gone, gone=True)
        return _with_stale(holder, stale)

    def _known(self, e: ObjectVersion) -> bool:
        return e.version_id not in (None, "null") and e.version_id in self.lease.version_ids

    def _body(self, e: ObjectVersion) -> dict[str, Any] | None:
        """A version's parsed body ({} when unreadable), or None when it vanished; ours is not read."""
        if self._known(e):
            return {"token": self.lease.token, "ttl_seconds": self.lease.ttl}
        raw = self.s3.get_version_or_none(self.cfg.bucket, LOCK_KEY, e.version_id)
        return None if raw is None else _parse(raw)

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
            if holder is not None and holder.token == self.lease.token:
                # Our own write, e.g. a PUT retried after its first answer was lost: confirm it below.
                self.lease.version_ids = list(dict.fromkeys([*self.lease.version_ids, *holder.version_ids]))
            elif holder is not None:
                if holder.stale and (self.break_lock or holder.gone):
                    self._break(holder)
                    continue
                raise self._held(holder)
            else:
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
                    else:
                        if vid2 is not None or probe == "written":
                            self.lease.version_ids.append(vid2)
                        self._fall_back("ignores If-None-Match")
            # A 412 on the probe says the key exists, not that our version is the
            # one that counts (a store whose If-None-Match is not atomic lets two
            # creates through): ownership is confirmed by reading back, in every mode.
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
                f"wait until {iso_utc(holder.expires, whole_seconds=True)} and run again with --break-lock",
                holder,
            )
        return LockHeld(
            f"another dr operation is running: lease held by {desc}",
            f"wait for it to finish and run again; if that process is gone, run with --break-lock "
            f"once the lease has expired ({iso_utc(holder.expires, whole_seconds=True)})",
            holder,
        )

    def _break(self, holder: Holder) -> None:
        """Delete a stale holder's versions (never a live one's) and log it."""
        try:
            # Every version of the holder (inspect reads only its newest), and still stale.
            current = self.inspect(full=True)
        except _Retry:
            return
        if current is None or current.token != holder.token or not current.stale:
            return  # released or renewed meanwhile: the next round looks again
        holder = current
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
        if holder.gone and not self.break_lock:
            self._say("warning", f"took over the lease of {holder.describe()}: {holder.stale}")
        else:
            self._say("warning", f"broke a stale lease held by {holder.describe()} ({holder.stale})")
        ts = utc_now()
        Index(self.cfg.index_path).append(
            {
                "kind": "lock-break",
                "id": f"{iso_utc(ts, whole_seconds=True)}-{self.lease.operation}",
                "ts": iso_utc(ts, whole_seconds=True),
                "bucket": self.cfg.bucket,
                "key": LOCK_KEY,
                "operation": self.lease.operation,
                "by": f"{self.lease.owner}@{self.lease.host} pid {self.lease.pid}",
                "reason": holder.stale,
                # Taken over without --break-lock: the holder was provably not running.
                "automatic": holder.gone and not self.break_lock,
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
                self._say("warning", f"the lease {self.where} was taken over while {self.lease.operation} ran: {who}")
                return False
            r = self.s3.put_bytes(self.cfg.bucket, LOCK_KEY, self.lease.body(), "application/json")
            # Each renewal is one more version of ours on a versioned bucket;
            # they all go at release. Overwriting the oldest would hand the
            # "oldest version" to a contender.
            self.lease.version_ids.append(r.get("VersionId"))
            if r.get("ResponseMetadata", {}).get("RetryAttempts") or r.get("VersionId") in (None, "null"):
                # A retried PUT may have written a version whose id we never saw.
                self._ids_complete = False
            return True

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
                    f"could not remove the lease {self.where}: {err.message}; the next run on this machine "
                    f"takes it over once this process has ended, elsewhere it goes stale within "
                    f"{self.lease.ttl:.0f}s and then needs --break-lock",
                )

    def _remove_own(self) -> None:
        """Delete every version of the lease object that we wrote, and nothing else."""
        if self._ids_complete:
            # Confirmed by a read-back after PUTs sent once each (in either
            # mode) and renewed without a retry since: every version we wrote
            # is one whose id we know. Delete those by id, without listing first.
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


def check_lease(
    cfg: DrConfig, s3: S3 | None = None, operation: str = "operation", notify: Notify | None = None
) -> None:
    """Raise `LockHeld`, as `hold_lease` would, when another operation holds the lease (live or stale); take nothing.

    For a run that turns out to have nothing to write (a no-change backup): it
    needs no lease, but it still stops, with the same message, where taking
    the lease would have stopped it. One HEAD while the lease is free. A lease
    left by a holder that is provably not running is removed (and logged, as
    `hold_lease` would take it over), so the run ends where a clean one does.
    """
    if (cfg.endpoint.endpoint_url, cfg.bucket) in _local.__dict__.get("leases", {}):
        return  # this thread holds it (re-entrant, as in hold_lease)
    client = _LeaseClient(cfg, s3 or S3(cfg.endpoint, cfg.concurrency), operation, False, DEFAULT_TTL, notify or _quiet)
    for _ in range(MAX_ROUNDS):
        try:
            holder = client.first_look()
        except _Retry:
            continue  # a holder's version vanished while we read it: look again
        if holder is not None and holder.gone:
            client._break(holder)
            continue  # gone now, or replaced meanwhile: look again
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
    try:
        client.start_renewing()
        if prepare is not None and not client.prepared:
            # Won without a settle wait (a conditional PUT): plan under the
            # renewed lease, as the body would.
            prepare()
        yield lease
    finally:
        del held[slot]
        client.release()
        if lease.lost:
            client._say(
                "warning",
                f"{operation} ran without the lease for part of its run (it was taken over); check its result",
            )
