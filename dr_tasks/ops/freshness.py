"""`dr.freshness`: a lint over the index for monitors and cron.

It reads only the local index (no request is sent) and flags:
- no complete `cross-region-backup` row, or one older than `backup.max_age_days`
  (a `partial` row never counts: that run left objects behind);
- unreadable index lines (garbled, or a torn last line from a crash);
- with `max_snapshot_age`, a newest `snapshot` row older than that, or none.
Each finding names what is missing and when the last one ran.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..index import Index, IndexRead, iso, parse_iso, utc_now

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_duration(text: str, flag: str) -> timedelta:
    """`6d`, `12h`, `90m`, `1.5d` -> timedelta; anything else is a DrError naming the flag."""
    m = _DURATION.match(text or "")
    if not m:
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
        raise DrError(f"{flag}={shown} is not a duration", f"use a number and a unit d, h or m, e.g. {flag}=6d")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if value <= timedelta(0):
        raise DrError(f"{flag}={text} must be longer than zero", f"use e.g. {flag}=6d")
    return value


def row_time(row: dict[str, Any] | None) -> datetime | None:
    """A row's `ts`, or None when it is missing or not our ISO format."""
    ts = row.get("ts") if row else None
    if not isinstance(ts, str):
        return None
    try:
        return parse_iso(ts)
    except ValueError:
        return None


def newest_backup_row(rows: list[dict[str, Any]], dest_bucket: str | None = None) -> dict[str, Any] | None:
    """The newest complete (not partial) cross-region-backup row, to `dest_bucket` when given."""
    best: tuple[datetime, dict[str, Any]] | None = None
    for r in rows:
        if r.get("kind") != "cross-region-backup" or r.get("partial") is not False:
            continue
        if dest_bucket is not None and r.get("dest_bucket") != dest_bucket:
            continue
        at = row_time(r)
        if at is not None and (best is None or at >= best[0]):
            best = (at, r)
    return best[1] if best else None


def _newest(rows: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    best: tuple[datetime, dict[str, Any]] | None = None
    for r in rows:
        at = row_time(r) if r.get("kind") == kind else None
        if at is not None and (best is None or at >= best[0]):
            best = (at, r)
    return best[1] if best else None


def ago(delta: timedelta) -> str:
    """A short human age: 40s, 12m, 5.2h, 9.1d."""
    s = delta.total_seconds()
    if s < 0:
        return "in the future"
    if s < 60:
        return f"{s:.0f}s ago"
    if s < 3600:
        return f"{s / 60:.0f}m ago"
    if s < 86400 * 2:
        return f"{s / 3600:.1f}h ago"
    return f"{s / 86400:.1f}d ago"


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
    """Is there a complete cross-region-backup row younger than backup.max_age_days? (And the row.)"""
    dest = cfg.backup.endpoint.bucket if cfg.backup.endpoint else None
    max_age = timedelta(days=cfg.backup.max_age_days)
    last = newest_backup_row(read.rows, dest)
    attempts = [r for r in read.rows if r.get("kind") == "cross-region-backup" and row_time(r) is not None]
    attempt = max(attempts, key=lambda r: row_time(r) or now, default=None)
    where = f" to s3://{dest}" if dest else ""
    fix = "run `inv dr.backup`" + (
        "" if dest else " after setting dr.backup.bucket and dr.backup.endpoint_url (another region)"
    )
    if last is None:
        detail = f"no complete cross-region-backup row{where} in {cfg.index}"
        if attempt is not None:
            detail += (
                f"; the last run, {attempt.get('id')} at {attempt.get('ts')}, was partial "
                f"({attempt.get('failed', '?')} objects failed)"
            )
        elif not dest:
            detail += "; dr.backup.bucket is not set"
        else:
            detail += "; dr.backup has never run"
        return Check("backup", False, detail, fix), None
    at = row_time(last)
    assert at is not None
    age = now - at
    summary = (
        f"last complete cross-region-backup {last.get('id')} at {last.get('ts')} ({ago(age)}) "
        f"-> {last.get('dest', 's3://' + str(last.get('dest_bucket')))}"
    )
    if age > max_age:
        extra = ""
        if attempt is not None and attempt is not last and attempt.get("partial"):
            extra = f"; a later run at {attempt.get('ts')} was partial"
        return (
            Check(
                "backup",
                False,
                f"stale: {summary}, older than backup.max_age_days={_days(cfg.backup.max_age_days)}{extra}",
                fix,
            ),
            last,
        )
    note = ""
    if attempt is not None and attempt is not last and attempt.get("partial") and (row_time(attempt) or at) > at:
        note = f"; note: the latest run, at {attempt.get('ts')}, was partial"
    return Check("backup", True, f"{summary}, within {_days(cfg.backup.max_age_days)}{note}"), last


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
    newest = _newest(read.rows, "snapshot")
    if newest is None:
        return Check("snapshot", False, "no snapshot row in the index", "take one: `inv dr.snapshot --label=...`"), None
    at = row_time(newest)
    assert at is not None
    age = now - at
    detail = f"newest snapshot {newest.get('id')} at {newest.get('ts')} ({ago(age)})"
    limit = f"{max_age.total_seconds() / 86400:g}d"
    if age > max_age:
        return (
            Check("snapshot", False, f"stale: {detail}, older than --max-snapshot-age={limit}", "take a snapshot"),
            newest,
        )
    return Check("snapshot", True, f"{detail}, within {limit}"), newest


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
    attempts = [r for r in read.rows if r.get("kind") == "cross-region-backup" and row_time(r) is not None]
    result = FreshnessResult(
        checks,
        last_backup=last,
        last_attempt=max(attempts, key=lambda r: row_time(r) or now, default=None),
        bad_lines=[{"line": b.lineno, "reason": b.reason, "text": b.text} for b in read.bad],
        now=iso(now),
    )
    if limit is not None:
        snap, newest = snapshot_age_check(read, limit, now)
        checks.append(snap)
        result.newest_snapshot = newest
    return result
