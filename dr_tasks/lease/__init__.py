"""The lease: one operation at a time changes the bucket (every writing operation takes it; see ops/leasing.py).

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

The package: `model` holds the records (the `Lease` we hold, the `Holder` we
read), `identity` decides whether a holder's process is provably gone,
`client` speaks the protocol above to the bucket; this module is the API.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ..config import DrConfig
from ..s3 import S3
from .client import _LeaseClient, _Retry
from .identity import holder_gone, host_identity, pid_alive
from .model import (
    DEFAULT_TTL,
    LOCK_KEY,
    MAX_ROUNDS,
    MODE_CONDITIONAL,
    MODE_READ_BACK,
    MODE_READ_BACK_UNVERSIONED,
    Holder,
    Lease,
    LeaseLost,
    LockHeld,
    Notify,
    Prepare,
    _quiet,
)

__all__ = [
    "DEFAULT_TTL",
    "LOCK_KEY",
    "MODE_CONDITIONAL",
    "MODE_READ_BACK",
    "MODE_READ_BACK_UNVERSIONED",
    "Holder",
    "Lease",
    "LeaseLost",
    "LockHeld",
    "Notify",
    "Prepare",
    "check_lease",
    "hold_lease",
    "holder_gone",
    "host_identity",
    "pid_alive",
    "read_lease",
]

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
