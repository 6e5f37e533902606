"""Taking, renewing and releasing one lease: the protocol of `dr_tasks.lease`, against the bucket."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..index import Index, utc_now
from ..layout import LOCK_KEY
from ..rows import LockBreakRow
from ..timeparse import iso_utc
from ..transport import S3, ObjectVersion, S3Error
from .identity import _owner, holder_gone
from .model import (
    MAX_ROUNDS,
    MODE_CONDITIONAL,
    MODE_READ_BACK,
    MODE_READ_BACK_UNVERSIONED,
    PID_MAX,
    SETTLE_SECONDS,
    Holder,
    Lease,
    LockHeld,
    Notify,
    Prepare,
    _elapsed_clocks,
    _parse,
    _text,
    _token,
    _ttl,
    _with_stale,
)


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
        # The version ids of the lease object's live versions at the last `inspect`.
        self._live_ids: set[str | None] = set()
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
        self._live_ids = {e.version_id for e in live}
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
            latest = next((e for e in entries if e.is_latest and not e.is_delete_marker), None)
            raw = self.s3.get_version_or_none(self.cfg.bucket, LOCK_KEY, None) if latest else None
            if latest is None or raw is None or _token(latest, _parse(raw)) != holder.token:
                return  # gone or replaced meanwhile: the next round looks again
            errors = self.s3.delete_keys(self.cfg.bucket, [LOCK_KEY])
        if errors:
            raise DrError(f"could not break the stale lease {self.where}: {errors[0].message}")
        self.lease.broke = holder
        if holder.gone and not self.break_lock:
            self._say("warning", f"took over the lease of {holder.describe()}: {holder.stale}")
        else:
            self._say("warning", f"broke a stale lease held by {holder.describe()} ({holder.stale})")
        row = LockBreakRow.new(
            ts=iso_utc(utc_now(), whole_seconds=True),
            bucket=self.cfg.bucket,
            key=LOCK_KEY,
            operation=self.lease.operation,
            by=f"{self.lease.owner}@{self.lease.host} pid {self.lease.pid}",
            reason=holder.stale,
            # Taken over without --break-lock: the holder was provably not running.
            automatic=holder.gone and not self.break_lock,
            broken=holder.to_dict(),
        )
        Index(self.cfg.index_path).append(row.format())

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
            if self._first_gone():
                # A renewal that was on its way when the lease, stale, was broken (and
                # maybe taken and released) landed after: it reads as ours, but others
                # may have written since. Only our first version's survival says not.
                self.lease.lost = True
                self._say(
                    "warning",
                    f"the lease {self.where} was broken while {self.lease.operation} ran "
                    "(a renewal landed after the break)",
                )
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

    def _first_gone(self) -> bool:
        """Whether the first version we wrote (never deleted while we hold the lease) left the listing."""
        real = [v for v in self.lease.version_ids if v not in (None, "null")]
        return bool(real) and real[0] not in self._live_ids

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
