"""Listings: every version (or current object) under a prefix, in key order, going around skipped prefixes.

No per-object HEAD where a listing already gave the answer; pages are read by
`listing_parse` and kept in the server's order (see `_merge_page`).
"""

from __future__ import annotations

import bisect
import contextlib
import email.utils
from collections.abc import Generator, Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .client import S3Base
from .errors import S3Error
from .listing_parse import _own_listing
from .listing_split import Item, Partition, in_key_order
from .model import ObjectVersion


class ListingMixin(S3Base):
    """The listing operations of `S3`."""

    def _pages(self, operation: str, bucket: str, kwargs: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
        """Pages of a listing, each with its entries (server order) under "DrEntries" (see `_parse_listing`)."""
        fn = self.client.list_object_versions if operation == "ListObjectVersions" else self.client.list_objects_v2
        marks = (
            (("NextKeyMarker", "KeyMarker"), ("NextVersionIdMarker", "VersionIdMarker"))
            if operation == "ListObjectVersions"
            else (("NextContinuationToken", "ContinuationToken"),)
        )
        while True:
            _own_listing.on = True
            try:
                page = fn(**kwargs)
            except (ClientError, BotoCoreError) as err:
                raise self._fail(operation, bucket, kwargs.get("Prefix"), err) from None
            finally:
                _own_listing.on = False
            if "DrEntries" not in page:
                raise S3Error(operation, bucket, kwargs.get("Prefix"), "the server's listing could not be read")
            yield page
            if not page.get("IsTruncated"):
                return
            nxt = {arg: page.get(field) or "" for field, arg in marks}
            if not any(nxt.values()) or all(kwargs.get(arg, "") == value for arg, value in nxt.items()):
                # A server that says "more" without a new marker would have us
                # start over, or ask for the same page, forever.
                raise S3Error(
                    operation,
                    bucket,
                    kwargs.get("Prefix"),
                    "the server said the listing goes on but sent no new page marker",
                    "this S3 server's listing is broken; report it to its operator",
                )
            kwargs.update(nxt)

    def _listing(
        self,
        operation: str,
        bucket: str,
        prefix: str,
        page_size: int,
        skip: tuple[str, ...],
        after: str = "",
        split: bool = True,
    ) -> Iterator[list[ObjectVersion]]:
        """Pages of entries under `prefix` (only keys after `after`), in key order, going around `skip`.

        Snapshots live in the bucket they snapshot, so a plain listing of
        live keys would read every version of every snapshot kept, and grow
        with each one. The listing runs plainly (a bucket without snapshots
        costs nothing more) until a page ends inside a skipped prefix. Then
        one listing with a '/' delimiter names the "directories", and each
        kept one after that point is listed on its own: Prefix and Delimiter
        are the parts of the listing API every store implements alike (a
        KeyMarker that is not a key is not: moto drops the key after it).
        So a skipped prefix costs at most one page of its keys and one
        delimited listing, whatever it holds. Callers still filter.

        When `split` and the first page is not the last, the rest is listed
        in partitions at once instead (see `_split`), unless the transfer
        config's `listing_partitions` is 1.
        """
        skip = tuple(p for p in skip if p)
        if prefix.startswith(skip):
            return
        inner = tuple(p for p in skip if p.startswith(prefix) and p != prefix)
        pages = self._pages(operation, bucket, {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size})
        width = self.config.listing_partitions if split and not after else 1
        last = ""
        for page in pages:
            entries = page["DrEntries"]
            if width > 1 and page.get("IsTruncated") and _worth_splitting(entries, prefix, width):
                pages.close()
                yield from self._split(operation, bucket, prefix, page, page_size, skip, width)
                return
            width = 1  # only a listing's first page decides
            kept = [e for e in entries if e.key > after] if after else entries
            if kept:
                yield kept
            if not entries:
                return
            # Where the server resumes, not the page's last entry: moto sends a
            # page's delete markers after all its versions, so the last entry
            # can sort below keys this page already yielded.
            last = max(page.get("NextKeyMarker") or "", max(e.key for e in entries))
            if inner and page.get("IsTruncated") and last.startswith(inner):
                break  # inside a skipped prefix, with more to come: go around it
        else:
            return
        floor = max(after, last)
        direct: list[ObjectVersion] = []
        subs: list[str] = []
        delimited = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size, "Delimiter": "/"}
        for page in self._pages(operation, bucket, delimited):
            direct.extend(e for e in page["DrEntries"] if e.key > floor)
            subs.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        # Directories wholly before `floor` were listed already; the one `floor` is in is listed after it.
        ahead = [s for s in subs if not s.startswith(skip) and (s > floor or floor.startswith(s))]
        if len(ahead) > self.config.max_split:
            # Many small directories: going on with the plain listing is fewer requests.
            for page in pages:
                yield [e for e in page["DrEntries"] if e.key > floor]
            return
        pages.close()
        i = 0
        for sub in ahead:
            j = i
            while j < len(direct) and direct[j].key < sub:
                j += 1
            if j > i:
                yield direct[i:j]
            i = j
            yield from self._listing(operation, bucket, sub, page_size, skip, floor if floor.startswith(sub) else "")
        if i < len(direct):
            yield direct[i:]

    def _split(
        self,
        operation: str,
        bucket: str,
        prefix: str,
        first: dict[str, Any],
        page_size: int,
        skip: tuple[str, ...],
        width: int,
    ) -> Iterator[list[ObjectVersion]]:
        """The listing after its first page `first`, in partitions listed `width` at a time, in key order.

        The keys before where the server resumes are whole on the first
        page (the key it resumes in may go on: versions of one key span
        pages), so that is where the rest starts. One '/'-delimited listing
        names the "directories" after it, which become the partitions, and
        the keys beside them, handed on in their place; each partition is
        listed plainly, going around skipped prefixes inside it.
        """
        entries: list[ObjectVersion] = first["DrEntries"]
        start = first.get("NextKeyMarker") or max(e.key for e in entries)
        done = [e for e in entries if e.key < start]
        if done:
            yield done
        plan = self._plan(operation, bucket, prefix, page_size, skip, start, entries, width)

        def run(part: Partition) -> Iterator[list[ObjectVersion]]:
            for page in self._listing(operation, bucket, part.prefix, page_size, skip, split=False):
                kept = [e for e in page if e.key >= part.start] if part.start else page
                if kept:
                    yield kept

        yield from in_key_order(plan, run, width)

    def _plan(
        self,
        operation: str,
        bucket: str,
        prefix: str,
        page_size: int,
        skip: tuple[str, ...],
        start: str,
        first: list[ObjectVersion],
        width: int,
        depth: int = 0,
    ) -> Iterator[Item]:
        """The partitions under `prefix` holding keys from `start` on, and the keys beside them, in key order.

        Where everything after `start` is in one "directory" (a repo's
        `state/`), that one is split in turn, unless the first page shows its
        own directories too small to be worth a request each (more of them
        on one page than partitions run at once). A level with more than
        `max_split` directories, or more than a few pages of keys beside
        them, is listed plainly instead: a request per directory would cost
        more than the pages it saves waiting for (and what is held here stays
        bounded).
        """
        held: list[Item] = []
        subs: list[Partition] = []
        beside = 0
        last_sub = ""
        delimited = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size, "Delimiter": "/"}
        pages = self._pages(operation, bucket, delimited)
        for page in pages:
            names = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            ahead = [n for n in names if n > last_sub and not n.startswith(skip)]
            ahead = [n for n in ahead if n >= start or start.startswith(n)]
            if ahead:
                last_sub = ahead[-1]
            items = _interleave([e for e in page["DrEntries"] if e.key >= start], ahead, start)
            held.extend(items)
            subs.extend(i for i in items if isinstance(i, Partition))
            beside += sum(len(i) for i in items if isinstance(i, list))
            if len(subs) > self.config.max_split or beside > 4 * page_size:
                pages.close()
                yield Partition(prefix, start)
                return
        if len(subs) == 1 and depth < 16:
            one = subs[0]
            if len(_units([e for e in first if e.key.startswith(one.prefix)], one.prefix)) <= width:
                at = held.index(one)
                yield from held[:at]
                yield from self._plan(operation, bucket, one.prefix, page_size, skip, start, first, width, depth + 1)
                yield from held[at + 1 :]
                return
        yield from held

    def iter_versions(
        self, bucket: str, prefix: str, page_size: int = 1000, skip: tuple[str, ...] = ()
    ) -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix`, page by page, in key order.

        Each key's entries come newest first; a key's entries may continue on
        the next page. Keys under the `skip` prefixes are left out where
        leaving them out saves requests (see `_listing`): callers still filter.
        """
        for entries in self._listing("ListObjectVersions", bucket, prefix, page_size, skip):
            yield from _merge_page(entries)

    def iter_objects(
        self, bucket: str, prefix: str, skip: tuple[str, ...] = (), page_size: int = 1000
    ) -> Iterator[ObjectVersion]:
        """Current objects under `prefix` (ListObjectsV2: no version ids); `skip` as in `iter_versions`."""
        for entries in self._listing("ListObjectsV2", bucket, prefix, page_size, skip):
            yield from entries

    def iter_current(
        self, bucket: str, prefix: str, versioned: bool, skip: tuple[str, ...] = ()
    ) -> Iterator[ObjectVersion]:
        """The current version of every key under `prefix`, with its version id when versioned."""
        if not versioned:
            yield from self.iter_objects(bucket, prefix, skip)
            return
        for v in self.iter_versions(bucket, prefix, skip=skip):
            if v.is_latest and not v.is_delete_marker:
                yield v

    def list_prefixes(self, bucket: str, prefix: str) -> tuple[list[str], list[ObjectVersion]]:
        """One level of a "directory": (common prefixes, objects) under `prefix` with '/' as delimiter."""
        prefixes: list[str] = []
        objects: list[ObjectVersion] = []
        for page in self._pages("ListObjectsV2", bucket, {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}):
            prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            objects.extend(page["DrEntries"])
        return prefixes, objects

    def key_versions(self, bucket: str, key: str) -> tuple[list[ObjectVersion], datetime | None]:
        """Versions and delete markers of exactly `key` (server order, newest first) and the server's Date."""
        entries: list[ObjectVersion] = []
        server_now: datetime | None = None
        for page in self._pages("ListObjectVersions", bucket, {"Bucket": bucket, "Prefix": key, "MaxKeys": 1000}):
            if server_now is None:
                date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
                if date:
                    with contextlib.suppress(TypeError, ValueError):
                        server_now = email.utils.parsedate_to_datetime(date)
            entries.extend(e for e in _merge_page(page["DrEntries"]) if e.key == key)
        return entries, server_now


def _worth_splitting(entries: list[ObjectVersion], prefix: str, width: int) -> bool:
    """Whether a first page shows directories under `prefix`, and few enough to be worth a request each.

    Keys with no directory are listed best by the plain listing (a delimited
    one would page through them the same way); directories more numerous on
    one page than partitions run at once hold fewer keys each than a page.
    """
    units = _units(entries, prefix)
    return any("/" in e.key[len(prefix) :] for e in entries) and len(units) <= width


def _units(entries: list[ObjectVersion], prefix: str) -> set[str]:
    """The "directories" (and keys) directly under `prefix` that `entries` fall in."""
    return {e.key[len(prefix) :].partition("/")[0] for e in entries}


def _interleave(direct: list[ObjectVersion], subs: list[str], start: str) -> list[Item]:
    """One delimited page's keys and "directories" (sorted) as plan items in key order.

    A key beside the directories never starts with one, so it sorts before
    or after all of a directory's keys as it sorts against its name. The
    keys keep the server's order within each gap (moto sends a page's
    delete markers after its versions; `_merge_page` puts them back).
    """
    gaps: list[list[ObjectVersion]] = [[] for _ in range(len(subs) + 1)]
    for e in direct:
        gaps[bisect.bisect_left(subs, e.key)].append(e)
    items: list[Item] = []
    for gap, sub in zip(gaps, subs, strict=False):
        if gap:
            items.append(gap)
        items.append(Partition(sub, start if start.startswith(sub) else ""))
    if gaps[-1]:
        items.append(gaps[-1])
    return items


def _merge_page(entries: list[ObjectVersion]) -> Iterator[ObjectVersion]:
    """One page's versions and delete markers, as the server sent them, in the server's newest-first order.

    The server's order is the contract (a restore takes the first entry with
    LastModified <= TS), so it is kept, never re-sorted by LastModified:
    that is wrong wherever timestamps are not monotonic in version order (a
    multipart object carries its upload's start time; skewed gateways).
    AWS and RGW interleave versions and markers in true order, so a page in
    which a version follows a delete marker is yielded as it came. A page
    with every version before every marker may be moto's shape (all Versions,
    then all DeleteMarkers, each list in true order): there, for each key
    that has both, the two lists are merged back, each list's own order kept:
    the entry marked IsLatest first, then the newer LastModified of the two
    heads, a tie going to the version. Only that choice between the two heads
    ever looks at a timestamp; a restore reports the keys where it mattered
    (see `ops.restore.versions_at`).
    """
    first_marker = next((i for i, e in enumerate(entries) if e.is_delete_marker), len(entries))
    if all(e.is_delete_marker for e in entries[first_marker:]):
        marked = {e.key for e in entries[first_marker:]}
        if marked & {e.key for e in entries[:first_marker]}:
            yield from _merge_split(entries[:first_marker], entries[first_marker:])
            return
    yield from entries


def _merge_split(versions: list[ObjectVersion], markers: list[ObjectVersion]) -> Iterator[ObjectVersion]:
    """Versions and markers (each in key order, newest first per key) merged key by key (see `_merge_page`)."""
    i = j = 0
    while i < len(versions) or j < len(markers):
        if j == len(markers) or (i < len(versions) and versions[i].key < markers[j].key):
            yield versions[i]
            i += 1
            continue
        if i == len(versions) or markers[j].key < versions[i].key:
            yield markers[j]
            j += 1
            continue
        key = versions[i].key
        while i < len(versions) and versions[i].key == key and j < len(markers) and markers[j].key == key:
            v, m = versions[i], markers[j]
            take_marker = m.is_latest or (not v.is_latest and m.last_modified > v.last_modified)
            if take_marker:
                yield m
                j += 1
            else:
                yield v
                i += 1
