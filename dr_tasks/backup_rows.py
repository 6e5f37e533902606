"""`cross-region-backup` rows (`rows.BackupRow`): which backup a row records (from which primary, to where), and
the newest.

Shared by `dr.backup` (`--if-older-than`, and whose backup a destination
holds), `dr.recover`, `dr.freshness` and `dr.verify`, so none of them imports
another operation for it. Reads rows only; sends nothing over the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import DrConfig
from .endpoints import same_endpoint
from .rows import BACKUP_KIND, BackupRow

KIND = BACKUP_KIND
# How far ahead of this machine's clock a row may be dated and still count:
# ordinary drift between the machine that ran the backup and this one. Past
# it, the row's age would be negative and it would pass for fresh for that
# much longer than `backup.max_age_days`, hiding a backup that stopped.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class BackupSource:
    """What a backup is made from: the primary's server, bucket and prefix.

    `prefix` is None where only the server and bucket were recorded (a backup
    state written before the prefix was), and is then not compared.
    """

    endpoint_url: str | None
    bucket: str
    prefix: str | None

    @classmethod
    def of(cls, cfg: DrConfig) -> BackupSource:
        return cls(cfg.endpoint.endpoint_url, cfg.bucket, cfg.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix or ''} at {self.endpoint_url or 'AWS'}"

    def same(self, other: BackupSource, *, resolve: bool = True) -> bool:
        """One bucket and prefix on one server (`same_endpoint`: spellings of one server are one server)."""
        if self.bucket != other.bucket:
            return False
        if self.prefix is not None and other.prefix is not None and self.prefix != other.prefix:
            return False
        return same_endpoint(self.endpoint_url, other.endpoint_url, resolve=resolve)

    def made(self, row: BackupRow) -> bool:
        """Whether a cross-region-backup row was read from this source, as far as the row records it.

        The row's `source` is `s3://<bucket>/<prefix>`; its `source_endpoint`
        is compared when recorded, by host and port with no DNS lookup.
        """
        recorded = row.source
        if recorded is None:
            return True  # rows from before the source was recorded
        head = f"s3://{self.bucket}/"
        if recorded != head + (self.prefix or "") and not (self.prefix is None and recorded.startswith(head)):
            return False
        if row.records_source_endpoint:
            return same_endpoint(row.source_endpoint, self.endpoint_url, resolve=False)
        return True


@dataclass(frozen=True)
class BackupDest:
    """Where the configured backup goes: what a cross-region-backup row must name to count.

    With `source`, a row must also have been read from it: rows of another
    primary (a repo that shared this destination, a primary since replaced)
    say nothing about this one's backup.
    """

    bucket: str
    prefix: str
    endpoint_url: str | None
    source: BackupSource | None = None

    @classmethod
    def of(cls, cfg: DrConfig) -> BackupDest | None:
        ep = cfg.backup.endpoint
        return cls(ep.bucket, cfg.backup.prefix, ep.endpoint_url, BackupSource.of(cfg)) if ep is not None else None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def holds(self, row: BackupRow) -> bool:
        """Whether `row` records a backup to this destination.

        The bucket is always compared; the prefix, the endpoint and (with
        `source`) where the row was read from only when the row records them,
        so rows written before they were recorded still count. Endpoint URLs
        compare by host and port with no DNS lookup: freshness sends nothing
        over the network.
        """
        if row.dest_bucket != self.bucket:
            return False
        if self.source is not None and not self.source.made(row):
            return False
        prefix = row.dest_prefix
        if prefix is not None and prefix != self.prefix:
            return False
        if row.records_dest_endpoint:
            return same_endpoint(row.dest_endpoint, self.endpoint_url, resolve=False)
        return True


def _matches(row: BackupRow, dest: str | BackupDest | None) -> bool:
    if dest is None:
        return True
    if isinstance(dest, BackupDest):
        return dest.holds(row)
    return row.dest_bucket == dest


# (position among the backup rows, in index order; when it ran; the row)
Entry = tuple[int, datetime, BackupRow]


def complete_rows(rows: list[BackupRow], dest: str | BackupDest | None) -> list[Entry]:
    """An entry for each complete cross-region-backup row to `dest` with a readable time, in index order."""
    out: list[Entry] = []
    for i, r in enumerate(rows):
        at = r.at if r.complete and _matches(r, dest) else None
        if at is not None:
            out.append((i, at, r))
    return out


def newest_of(entries: list[Entry]) -> Entry | None:
    """The latest-dated entry; of equal dates, the one appended last."""
    return max(entries, key=lambda e: (e[1], e[0]), default=None)


def newest_backup_row(
    rows: list[BackupRow], dest: str | BackupDest | None = None, *, now: datetime | None = None
) -> BackupRow | None:
    """The newest complete (not partial) cross-region-backup row, to `dest` when given.

    `dest` is a bucket name (only `dest_bucket` is compared) or a `BackupDest`
    (bucket, prefix and endpoint, see `BackupDest.holds`). With `now`, rows
    dated more than FUTURE_TOLERANCE after it are left out: their age says nothing.
    """
    entries = complete_rows(rows, dest)
    if now is not None:
        entries = [e for e in entries if e[1] <= now + FUTURE_TOLERANCE]
    newest = newest_of(entries)
    return newest[2] if newest else None


def last_backup_attempt(rows: list[BackupRow], dest: str | BackupDest | None = None) -> BackupRow | None:
    """The newest cross-region-backup row to `dest`, complete or partial."""
    entries: list[Entry] = []
    for i, r in enumerate(rows):
        at = r.at if _matches(r, dest) else None
        if at is not None:
            entries.append((i, at, r))
    newest = newest_of(entries)
    return newest[2] if newest else None
