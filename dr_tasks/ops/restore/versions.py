"""Which version of each key was current at TS: the choice, and where the server's order decided it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from ...errors import DrError
from ...timeparse import iso_utc
from ...transport import ObjectVersion


@dataclass(frozen=True)
class OrderAmbiguity:
    """A key whose version at TS the server's order decided where its timestamps say otherwise, or tie.

    `chosen` is what was restored (the first entry in server order with
    LastModified <= TS); `others` are the entries listed after it (so older,
    by the server's order) whose LastModified is later than the chosen one's,
    or equal to it with the other kind (a write and a delete at one instant).
    Each is "<version id> <LastModified>" with " (delete marker)" for a marker.
    """

    key: str
    reason: str
    chosen: str
    others: list[str]

    def describe(self) -> str:
        shown = ", ".join(self.others[:AMBIGUOUS_SHOWN]) + (" ..." if len(self.others) > AMBIGUOUS_SHOWN else "")
        return f"{self.key}: {self.reason}; chose {self.chosen} (the server's order) over {shown}"


# Entries of one key an ambiguity names, at most; keys named as warnings (all are in the receipt).
AMBIGUOUS_SHOWN = 3
AMBIGUOUS_WARNED = 10


def _entry_name(e: ObjectVersion) -> str:
    return f"{e.version_id or 'null'} {iso_utc(e.last_modified)}" + (" (delete marker)" if e.is_delete_marker else "")


@dataclass(frozen=True)
class KeyAtTs:
    """One key's state at TS: `entry` is the version then current, None when absent."""

    key: str
    entry: ObjectVersion | None
    state: str  # "present", "deleted" (a delete marker was current) or "not-yet" (born after TS)
    oldest: datetime  # the key's oldest LastModified seen (for "pick a later time" hints)
    ambiguity: OrderAmbiguity | None = None


def versions_at(entries: Iterable[ObjectVersion], ts: datetime) -> Iterator[KeyAtTs]:
    """Decide, key by key as the listing streams, which entry was current at `ts`.

    The contract: the first entry in the server's newest-first order with
    LastModified <= TS (exactly at TS counts); a delete marker there means
    absent; no such entry means the key was born after TS. The order is the
    listing's (`S3.iter_versions` keeps the server's, see `s3._merge_page`),
    never re-sorted by timestamp. Where the timestamps disagree with that
    order after the chosen entry (a later LastModified listed as older), or
    a write and a delete share the chosen entry's LastModified, the choice is
    the order's and `ambiguity` says so. Memory is one key's state (and at
    most AMBIGUOUS_SHOWN of its entries), whatever the number of versions.
    """
    current: _KeyEntries | None = None
    for e in entries:
        if current is None or e.key != current.key:
            if current is not None:
                if e.key < current.key:
                    # A key decided already could come back with other
                    # versions; never guess, the listing contract is broken.
                    raise DrError(
                        f"the server listed key {e.key!r} after {current.key!r}: versions are not in key order",
                        "this S3 server does not list versions as S3 does; restore cannot pick versions safely",
                    )
                yield current.decide()
            current = _KeyEntries(e.key, e.last_modified, ts)
        current.add(e)
    if current is not None:
        yield current.decide()


class _KeyEntries:
    """One key's entries as they stream, newest first: the one current at TS and those its order overrode."""

    def __init__(self, key: str, first_seen: datetime, ts: datetime) -> None:
        self.key, self.ts = key, ts
        self.best: ObjectVersion | None = None
        self.oldest = first_seen
        self.later: list[ObjectVersion] = []  # listed after `best` with a later LastModified
        self.later_count = 0
        self.tied: list[ObjectVersion] = []  # listed after `best`, same LastModified, the other kind
        self.tied_count = 0

    def add(self, e: ObjectVersion) -> None:
        self.oldest = min(self.oldest, e.last_modified)
        best = self.best
        if best is None:
            if e.last_modified <= self.ts:
                self.best = e
        elif e.last_modified > best.last_modified:
            self.later_count += 1
            if len(self.later) < AMBIGUOUS_SHOWN:
                self.later.append(e)
        elif e.last_modified == best.last_modified and e.is_delete_marker != best.is_delete_marker:
            self.tied_count += 1
            if len(self.tied) < AMBIGUOUS_SHOWN:
                self.tied.append(e)

    def _ambiguity(self, best: ObjectVersion) -> OrderAmbiguity | None:
        later, tied = self.later_count, self.tied_count
        if not (later or tied):
            return None
        reason = (
            f"{later} {'entry' if later == 1 else 'entries'} listed as older "
            f"{'has' if later == 1 else 'have'} a later LastModified"
            if later
            else "a write and a delete share its LastModified"
        )
        others = [_entry_name(e) for e in (self.later or self.tied)]
        if len(others) < later + tied:
            others.append(f"and {later + tied - len(others)} more")
        return OrderAmbiguity(self.key, reason, _entry_name(best), others)

    def decide(self) -> KeyAtTs:
        best = self.best
        if best is None:
            return KeyAtTs(self.key, None, "not-yet", self.oldest)
        ambiguity = self._ambiguity(best)
        if best.is_delete_marker:
            return KeyAtTs(self.key, None, "deleted", self.oldest, ambiguity)
        return KeyAtTs(self.key, best, "present", self.oldest, ambiguity)
