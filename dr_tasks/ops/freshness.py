"""`dr.freshness`: a lint over the index for monitors and cron.

It reads only the local index (no request is sent) and flags:
- no complete `cross-region-backup` row to the configured destination
  (`backup.bucket`, `backup.prefix`, `backup.endpoint_url`) read from the
  configured primary (`bucket`, `prefix`, `endpoint_url`), as far as the row
  records them, or one older than `backup.max_age_days` (a `partial` row
  never counts: that run left objects behind; a row of another primary says
  nothing about this one's backup);
- a complete row dated more than FUTURE_TOLERANCE ahead of this machine's
  clock, until a correctly dated row follows it: a clock was skewed, and such
  a row would look fresh long after the backup stopped;
- unreadable index lines (garbled, or a torn last line from a crash);
- with `max_snapshot_age`, a newest `snapshot` row older than that, or none;
- with `drill.max_age_days`, no `drill` row (`dr.drill --live`), a newest one
  that failed, or one older than that (`drill_check`, also in `dr.verify`).
Each finding names what is missing and when the last one ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..backup_rows import (
    FUTURE_TOLERANCE,
    BackupDest,
    Entry,
    complete_rows,
    last_backup_attempt,
    newest_backup_row,
    newest_of,
)
from ..config import DrConfig
from ..history import newest_snapshot
from ..index import Index, IndexRead, utc_now
from ..rows import BackupRow, DrillRow, drill_rows
from ..timeparse import iso_utc, parse_duration


def span(delta: timedelta) -> str:
    """A short human length of time: 40s, 12m, 5.2h, 9.1d."""
    s = abs(delta.total_seconds())
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400 * 2:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def ago(delta: timedelta) -> str:
    """A short human age: 40s ago, 12m ago, 5.2h ago, 9.1d ago."""
    if delta.total_seconds() < 0:
        return "in the future"
    return f"{span(delta)} ago"


def _days(value: float) -> str:
    return f"{value:g} day" + ("" if value == 1 else "s")


@dataclass
class Check:
    """One line of a checklist: its name, pass or fail, what was found, and the fix when it fails."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FreshnessResult:
    checks: list[Check]
    last_backup: dict[str, Any] | None = None
    last_attempt: dict[str, Any] | None = None
    newest_snapshot: dict[str, Any] | None = None
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    now: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "now": self.now,
            "checks": [c.to_dict() for c in self.checks],
            "last_backup": self.last_backup,
            "last_attempt": self.last_attempt,
            "newest_snapshot": self.newest_snapshot,
            "bad_lines": self.bad_lines,
        }


def backup_check(cfg: DrConfig, read: IndexRead, now: datetime) -> tuple[Check, dict[str, Any] | None]:
    """Is there a complete cross-region-backup row to the configured destination younger than backup.max_age_days?

    Also returns the row that counted, as the index has it. A row dated more than FUTURE_TOLERANCE
    ahead of `now` never counts, and fails the check until a correctly dated
    row follows it in the index (the skew was put right and a backup ran).
    """
    dest = BackupDest.of(cfg)
    complete = complete_rows(read.backups(), dest)
    horizon = now + FUTURE_TOLERANCE
    future = [e for e in complete if e[1] > horizon]
    newest = newest_of([e for e in complete if e[1] <= horizon])
    # A row from the future that no correctly dated row follows in the index:
    # the skew has not been put right since (or this machine's clock is behind).
    ahead = [e for e in future if newest is None or e[0] > newest[0]]
    attempt = last_backup_attempt(read.backups(), dest)
    where = f" to {dest}" if dest else ""
    fix = "run `inv dr.backup`" + (
        "" if dest else " after setting dr.backup.bucket and dr.backup.endpoint_url (another region)"
    )
    if ahead:
        return _skew_check(ahead, newest, where, now), newest[2].raw if newest else None
    if newest is None:
        return Check("backup", False, _missing_detail(cfg, read, dest, attempt, where), fix), None
    _, at, last = newest
    age = now - at
    skewed = _ignored_future_note(future)
    summary = f"last complete cross-region-backup {last.id} at {last.ts} ({ago(age)}) -> {_dest(last)}"
    if age > timedelta(days=cfg.backup.max_age_days):
        extra = ""
        if attempt is not None and attempt is not last and attempt.partial:
            extra = f"; a later run at {attempt.ts} was partial"
        return (
            Check(
                "backup",
                False,
                f"stale: {summary}, older than backup.max_age_days={_days(cfg.backup.max_age_days)}{extra}{skewed}",
                fix,
            ),
            last.raw,
        )
    note = ""
    if attempt is not None and attempt is not last and attempt.partial and (attempt.at or at) > at:
        note = f"; note: the latest run, at {attempt.ts}, was partial"
    return Check("backup", True, f"{summary}, within {_days(cfg.backup.max_age_days)}{note}{skewed}"), last.raw


def _dest(row: BackupRow) -> str:
    return row.dest or f"s3://{row.dest_bucket}"


def _skew_check(ahead: list[Entry], newest: Entry | None, where: str, now: datetime) -> Check:
    """The failure for complete rows dated in the future that no correctly dated row has followed."""
    _, at, row = max(ahead, key=lambda e: (e[1], e[0]))
    detail = (
        f"clock skew: the newest complete cross-region-backup row{where}, {row.id}, is dated {row.ts}, "
        f"{span(at - now)} ahead of this machine's clock ({iso_utc(now, whole_seconds=True)}; "
        f"up to {span(FUTURE_TOLERANCE)} is allowed), "
        "so its age cannot show whether backups still run"
    )
    if len(ahead) > 1:
        detail += f" ({len(ahead)} such rows)"
    if newest is not None:
        detail += f"; the newest correctly dated row, {newest[2].id}, ran {ago(now - newest[1])}"
    return Check(
        "backup",
        False,
        detail,
        "set the clocks right (NTP, e.g. `timedatectl set-ntp true`) here and where dr.backup runs, then run "
        "`inv dr.backup`: once a correctly dated row follows them in the index, rows from the future are ignored",
    )


def _ignored_future_note(entries: list[Entry]) -> str:
    """A note on rows from the future that a correctly dated row has since followed (they do not count)."""
    if not entries:
        return ""
    _, _, row = max(entries, key=lambda e: (e[1], e[0]))
    return (
        f"; note: {len(entries)} complete row(s) dated in the future (the latest {row.id}) are ignored: "
        "a clock was ahead when they were written"
    )


def _missing_detail(
    cfg: DrConfig, read: IndexRead, dest: BackupDest | None, attempt: BackupRow | None, where: str
) -> str:
    """Why no row counts: a partial last run, rows for another destination, no backup configured, or none at all."""
    detail = f"no complete cross-region-backup row{where} in {cfg.index}"
    if attempt is not None:
        return detail + (
            f"; the last run, {attempt.id} at {attempt.ts}, was partial "
            f"({'?' if attempt.failed is None else attempt.failed} objects failed)"
        )
    if not dest:
        return detail + "; dr.backup.bucket is not set"
    if dest.source is not None:
        foreign = newest_backup_row(read.backups(), replace(dest, source=None))
        if foreign is not None:
            at = f" at {foreign.source_endpoint or 'AWS'}" if foreign.records_source_endpoint else ""
            return detail + (
                f" from this repo's primary {dest.source}; the newest complete one, {foreign.id} at "
                f"{foreign.ts}, was read from {foreign.source}{at}: dr.bucket, prefix or endpoint_url "
                "changed since (or the rows are another repo's), and nothing has been backed up from this primary"
            )
    other = newest_backup_row(read.backups())
    if other is not None:
        at = f" at {other.dest_endpoint or 'AWS'}" if other.records_dest_endpoint else ""
        return detail + (
            f"; the newest complete one, {other.id} at {other.ts}, went to {_dest(other)}{at}: "
            "dr.backup.bucket, prefix or "
            "endpoint_url changed since, and nothing has been backed up to the new destination"
        )
    return detail + "; dr.backup has never run"


def index_check(cfg: DrConfig, read: IndexRead) -> Check:
    if not read.bad:
        return Check("index", True, f"{cfg.index}: {len(read.rows)} rows, every line reads clean")
    kinds = "torn last line (a crash cut the write)" if read.torn_tail else "unreadable lines"
    shown = "; ".join(b.describe() for b in read.bad[:3]) + (" ..." if len(read.bad) > 3 else "")
    return Check(
        "index",
        False,
        f"{cfg.index}: {len(read.bad)} bad line(s), {kinds}: {shown}",
        "the lines are kept as they are; inspect them, and rebuild lost snapshot rows with `inv dr.reindex`",
    )


def snapshot_age_check(read: IndexRead, max_age: timedelta, now: datetime) -> tuple[Check, dict[str, Any] | None]:
    newest = newest_snapshot(read)
    at = newest.at if newest is not None else None
    if newest is None or at is None:
        return Check("snapshot", False, "no snapshot row in the index", "take one: `inv dr.snapshot --label=...`"), None
    age = now - at
    detail = f"newest snapshot {newest.id} at {newest.ts} ({ago(age)})"
    limit = f"{max_age.total_seconds() / 86400:g}d"
    if age > max_age:
        return (
            Check("snapshot", False, f"stale: {detail}, older than --max-snapshot-age={limit}", "take a snapshot"),
            newest.raw,
        )
    return Check("snapshot", True, f"{detail}, within {limit}"), newest.raw


DRILL_FIX = "run `inv dr.drill --live` (weekly from cron or a systemd timer: see README.md)"


def drill_check(cfg: DrConfig, read: IndexRead, now: datetime) -> Check | None:
    """Is the newest `drill` row a pass younger than drill.max_age_days? None when that key is unset.

    The newest by date (of equal dates, the one appended last), as the backup
    rule reads its rows; a row dated ahead of this machine's clock by more
    than FUTURE_TOLERANCE never counts.
    """
    limit = cfg.drill_max_age_days
    if limit is None:
        return None
    horizon = now + FUTURE_TOLERANCE
    best: tuple[datetime, DrillRow] | None = None
    for row in drill_rows(read.rows):
        at = row.at
        if at is not None and at <= horizon and (best is None or at >= best[0]):
            best = (at, row)
    if best is None:
        return Check(
            "drill", False, f"no drill row in {cfg.index}: a restore from the backup was never tried", DRILL_FIX
        )
    at, row = best
    summary = f"newest drill {row.id} of snapshot {row.snapshot} from the {row.source} ({ago(now - at)})"
    if row.ok is not True:
        shown = ", ".join(row.failed[:5]) + (" ..." if (row.failed_count or 0) > 5 else "")
        steps = ", ".join(s.name for s in row.steps if not s.ok) or "-"
        what = (
            f"{row.failed_count or len(row.failed)} object(s) did not come back as recorded ({shown})"
            if row.failed
            else f"step {steps} failed"
        )
        return Check(
            "drill",
            False,
            f"{summary} failed: {what}",
            "find out why (`inv dr.verify --deep`, `inv dr.backup`), then " + DRILL_FIX,
        )
    if now - at > timedelta(days=limit):
        return Check("drill", False, f"stale: {summary}, older than drill.max_age_days={_days(limit)}", DRILL_FIX)
    return Check(
        "drill", True, f"{summary} passed ({row.objects} objects, RTO {row.rto_seconds}s), within {_days(limit)}"
    )


def check_freshness(
    cfg: DrConfig, *, max_snapshot_age: str | timedelta | None = None, now: datetime | None = None
) -> FreshnessResult:
    """Lint the index; returns every check (see `.ok`). Sends no request."""
    limit = (
        parse_duration(max_snapshot_age, "--max-snapshot-age")
        if isinstance(max_snapshot_age, str)
        else max_snapshot_age
    )
    now = now or utc_now()
    read = Index(cfg.index_path).read()
    backup, last = backup_check(cfg, read, now)
    checks = [backup, index_check(cfg, read)]
    drill = drill_check(cfg, read, now)
    if drill is not None:
        checks.append(drill)
    attempt = last_backup_attempt(read.backups(), BackupDest.of(cfg))
    result = FreshnessResult(
        checks,
        last_backup=last,
        last_attempt=attempt.raw if attempt is not None else None,
        bad_lines=[{"line": b.lineno, "reason": b.reason, "text": b.text} for b in read.bad],
        now=iso_utc(now, whole_seconds=True),
    )
    if limit is not None:
        snap, newest = snapshot_age_check(read, limit, now)
        checks.append(snap)
        result.newest_snapshot = newest
    return result
