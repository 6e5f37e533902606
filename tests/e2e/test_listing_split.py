"""Listings in partitions at once (transport/listing_split.py): the same entries, in the same order, as one stream."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from dr_tasks.config import Endpoint
from dr_tasks.timeparse import compact_utc, iso_utc
from dr_tasks.transport import S3
from dr_tasks.transport.errors import S3Error
from dr_tasks.transport.listing_split import Partition, in_key_order
from dr_tasks.transport.model import ObjectVersion
from dr_tasks.transport.settings import TransferConfig
from tests.conftest import local_tree, new_bucket
from tests.support.faultproxy import Rule

SKIP = ("snapshots/", ".dr-tasks/", "state/snaps/")


def make_s3(server, partitions: int, max_split: int = 64) -> S3:
    endpoint = Endpoint("unused", server.endpoint, "us-east-1", None, server.access_key, server.secret_key)
    return S3(endpoint, 8, TransferConfig(listing_partitions=partitions, max_split=max_split))


def seed(server) -> str:
    """Keys at the top level, directories big and small, many versions of one key, delete markers, skipped prefixes."""
    bucket = new_bucket(server)
    c = server.client()
    keys = [
        ".dr-tasks/lock.json",
        "a-top",
        *[f"d1/k{i}" for i in range(7)],
        "d1-x",  # sorts before every "d1/..." ('-' < '/')
        "d1z",
        "m-top",
        *[f"snapshots/s{i}/k" for i in range(6)],
        "snapshots0",
        *[f"state/u{u}/k{i}" for u in range(4) for i in range(3)],
        *[f"state/snaps/{i}" for i in range(5)],
        "state/top",
        "zz",
    ]
    for k in keys:
        c.put_object(Bucket=bucket, Key=k, Body=b"1")
    for i in range(7):  # one key's versions span pages
        c.put_object(Bucket=bucket, Key="d2/many", Body=str(i).encode())
    for k in ("d3/gone", "state/u1/k1", "m-top"):  # delete markers, one of a key deleted twice
        c.delete_object(Bucket=bucket, Key=k)
    c.delete_object(Bucket=bucket, Key="d3/gone")
    return bucket


def listings(s3: S3, bucket: str, page_size: int, skip: tuple[str, ...]) -> tuple[list[tuple], list[tuple]]:
    versions = [
        (v.key, v.version_id, v.is_delete_marker, v.is_latest)
        for v in s3.iter_versions(bucket, "", page_size=page_size, skip=skip)
    ]
    objects = [(o.key, o.etag) for o in s3.iter_objects(bucket, "", skip=skip, page_size=page_size)]
    return versions, objects


def live(entries: list[tuple], skip: tuple[str, ...]) -> list[tuple]:
    return [e for e in entries if not e[0].startswith(skip)]


@pytest.mark.parametrize("page_size", [2, 3, 5, 1000])
def test_partitioned_listing_gives_the_serial_sequence(server, page_size):
    bucket = seed(server)
    serial = make_s3(server, 1)
    for skip in ((), SKIP):
        want_versions, want_objects = listings(serial, bucket, page_size, skip)
        # max_split=1: a level with more directories than that is listed plainly from where the split began
        for partitions, max_split in ((2, 64), (8, 64), (8, 1)):
            s3 = make_s3(server, partitions, max_split)
            got_versions, got_objects = listings(s3, bucket, page_size, skip)
            assert live(got_versions, skip) == live(want_versions, skip), (skip, partitions, max_split)
            assert live(got_objects, skip) == live(want_objects, skip), (skip, partitions, max_split)
    assert sum(e[0] == "d2/many" for e in want_versions) == 7


def test_a_prefix_listing_is_partitioned_below_it_too(server):
    bucket = seed(server)
    want = [(v.key, v.version_id) for v in make_s3(server, 1).iter_versions(bucket, "state/", page_size=2, skip=SKIP)]
    got = [(v.key, v.version_id) for v in make_s3(server, 4).iter_versions(bucket, "state/", page_size=2, skip=SKIP)]
    assert live(got, SKIP) == live(want, SKIP)
    assert {k for k, _ in want} >= {"state/top", "state/u3/k2"}


def _pages(*keys: str) -> list[list[ObjectVersion]]:
    return [[ObjectVersion(k, None, 1, "e", None, True)] for k in keys]  # type: ignore[arg-type]


def test_in_key_order_keeps_the_plan_order_with_empty_partitions_and_slow_ones():
    plan = [_pages("a")[0], Partition("b/"), Partition("c/"), _pages("c-x")[0], Partition("d/"), Partition("e/")]

    def run(part: Partition) -> Iterator[list[ObjectVersion]]:
        if part.prefix == "c/":
            return iter([])  # an empty partition
        if part.prefix == "b/":
            time.sleep(0.2)  # the first partition is the slowest: the others wait their turn
        return iter(_pages(part.prefix + "1", part.prefix + "2"))

    got = [e.key for page in in_key_order(iter(plan), run, 3) for e in page]
    assert got == ["a", "b/1", "b/2", "c-x", "d/1", "d/2", "e/1", "e/2"]


def test_a_partition_error_is_raised_in_its_turn_and_closing_leaves_no_thread():
    def run(part: Partition) -> Iterator[list[ObjectVersion]]:
        if part.prefix == "c/":
            raise S3Error("ListObjectVersions", "b", "c/", "boom")
        yield from _pages(*(f"{part.prefix}{i:03}" for i in range(50)))

    before = threading.active_count()
    seen: list[str] = []
    with pytest.raises(S3Error, match="boom"):
        for page in in_key_order(iter([Partition("a/"), Partition("b/"), Partition("c/")]), run, 4):
            seen.extend(e.key for e in page)
    assert len(seen) == 100 and seen == sorted(seen)
    assert threading.active_count() == before

    listing = in_key_order(iter([Partition(f"{i}/") for i in range(6)]), run, 4, pages_ahead=1)
    next(listing)
    listing.close()  # a reader that stops early: the workers blocked on their buffers end
    assert threading.active_count() == before


def test_restore_and_snapshot_list_in_partitions_at_once_through_a_slow_store(server, bucket, make_repo, fault_proxy):
    """At a real region's latency one stream of pages is the wait: partitions must be in flight together."""
    files = {f"state/skills/u{u:02}/k{i:04}.txt": f"{u}-{i}\n".encode() for u in range(6) for i in range(200)}
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    c = server.client()
    for rel, data in files.items():
        (repo.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo.path / rel).write_bytes(data)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: c.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), files.items()))
    t = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (t - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    fault_proxy.add(Rule(op="ListObjectVersions", fault=None, times=0, delay=0.05))

    r = repo.run("dr.restore", "--all", iso_utc(t), "--json")
    assert r.returncode == 0, r.stderr
    assert local_tree(repo.path / "_restore" / f"_all-{compact_utc(t)}") == files
    assert fault_proxy.peak["ListObjectVersions"] > 1, fault_proxy.counts
    # the first page, a delimited listing for each of "", state/ and state/skills/, a page or so per unit
    assert fault_proxy.counts["ListObjectVersions"] <= 1 + 3 + 6, fault_proxy.counts

    fault_proxy.clear()
    fault_proxy.add(Rule(op="ListObjectVersions", fault=None, times=0, delay=0.05))
    r = repo.run("dr.snapshot", "--label=slow", "--json")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert fault_proxy.peak["ListObjectVersions"] > 1, fault_proxy.counts
    listed = c.list_objects_v2(Bucket=bucket, Prefix="snapshots/", MaxKeys=1000)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    while listed.get("IsTruncated"):
        listed = c.list_objects_v2(
            Bucket=bucket, Prefix="snapshots/", MaxKeys=1000, ContinuationToken=listed["NextContinuationToken"]
        )
        keys.extend(o["Key"] for o in listed.get("Contents", []))
    copied = sorted(k.split("/", 2)[2] for k in keys if not k.endswith(".manifest.json"))
    assert copied == sorted(files), (snap, len(copied))


def test_sigint_while_partitions_are_listed_ends_honestly_with_130(server, bucket, make_repo, fault_proxy):
    from .test_endings import park_then_signal

    files = {f"state/skills/u{u:02}/k{i:04}.txt": b"x\n" for u in range(6) for i in range(200)}
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    c = server.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: c.put_object(Bucket=bucket, Key=k, Body=b"x\n"), files))
    t = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (t - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    held = fault_proxy.add(Rule(op="ListObjectVersions", prefix="state/skills/u05/", fault="hold"))
    proc = repo.spawn("dr.restore", "--all", iso_utc(t))
    out, err = park_then_signal(proc, held, fault_proxy, signal.SIGINT)

    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    assert "interrupted by SIGINT" in err
    assert not (repo.path / "_restore" / f"_all-{compact_utc(t)}").exists()
