"""The one way an operation takes the primary's lease (see `dr_tasks.lease`).

Every writing operation (snapshot, rollback, prune, pin, backup, recover,
reindex, verify's manifest rewrite) enters `operation_lease` around its
writes, so a Python caller is safe by default. A caller that already holds
the lease says so by passing the `Lease` it holds (`lease=`): the rollback
passes its own to the safety snapshot, a script may hold one across several
operations. Tasks only pass `break_lock` and how to show notes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..config import DrConfig
from ..errors import DrError
from ..lease import DEFAULT_TTL, Lease, Notify, Prepare, hold_lease
from ..s3 import S3

# Seconds a lease lives without renewal, for every operation of this process.
# Operators rarely need it; tests use a short one to expire a lease quickly.
TTL_ENV = "DR_LEASE_TTL"


def lease_ttl() -> float:
    raw = os.environ.get(TTL_ENV)
    if raw is None or raw == "":
        return DEFAULT_TTL
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not 1 <= ttl <= 86400:
        raise DrError(f"{TTL_ENV}={raw[:40]!r} is not a number of seconds from 1 to 86400", f"unset {TTL_ENV}")
    return ttl


@contextlib.contextmanager
def operation_lease(
    cfg: DrConfig,
    s3: S3,
    operation: str,
    *,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
    prepare: Prepare | None = None,
) -> Iterator[Lease]:
    """Hold the lease of `cfg.bucket` for the body: the caller's `lease` if it passes one, else one taken here.

    `prepare` (read-only planning) runs before the body either way, under the
    lease; see `hold_lease`. A passed lease must be for this bucket and still
    ours: a lost one stops the operation before it starts.
    """
    if lease is None:
        with hold_lease(
            cfg, s3, operation, break_lock=break_lock, ttl=lease_ttl(), notify=notify, prepare=prepare
        ) as taken:
            yield taken
        return
    if not isinstance(lease, Lease):
        raise TypeError(f"lease must be the dr_tasks.Lease the caller holds, not {type(lease).__name__}")
    if lease.bucket != cfg.bucket:
        raise DrError(
            f"the lease passed to {operation} is for s3://{lease.bucket}, not s3://{cfg.bucket}",
            "pass the lease of this bucket, or none (the operation then takes it itself)",
        )
    lease.ensure(f"{operation} did not start")
    if prepare is not None:
        prepare()
    yield lease
