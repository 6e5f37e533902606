"""The S3 layer against real servers: listing order, big copies, request counts."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from dr_tasks import transport as s3mod
from dr_tasks.transport import S3, count_requests, counting, settings, streaming
from tests.conftest import new_bucket


def make_s3(server, concurrency: int = 4) -> S3:
    from dr_tasks.config import Endpoint

    return S3(Endpoint("unused", server.endpoint, "us-east-1", None, server.access_key, server.secret_key), concurrency)


def test_versions_come_newest_first_with_delete_markers_in_place(server):
    bucket = new_bucket(server)
    c = server.client()
    for i in range(3):
        c.put_object(Bucket=bucket, Key="k/a.txt", Body=f"v{i}".encode())
    c.delete_object(Bucket=bucket, Key="k/a.txt")
    c.put_object(Bucket=bucket, Key="k/b.txt", Body=b"b")
    entries = list(make_s3(server).iter_versions(bucket, "k/"))
    assert [e.key for e in entries] == ["k/a.txt"] * 4 + ["k/b.txt"]
    assert entries[0].is_delete_marker and entries[0].is_latest
    bodies = [c.get_object(Bucket=bucket, Key="k/a.txt", VersionId=e.version_id)["Body"].read() for e in entries[1:4]]
    assert bodies == [b"v2", b"v1", b"v0"]
    current = list(make_s3(server).iter_current(bucket, "k/", versioned=True))
    assert [e.key for e in current] == ["k/b.txt"]


def test_versions_of_one_key_split_across_pages(moto_server):
    bucket = new_bucket(moto_server)
    c = moto_server.client()
    for i in range(5):
        c.put_object(Bucket=bucket, Key="p/x", Body=str(i).encode())
    with count_requests() as counts:
        s3 = make_s3(moto_server)
        flat = list(s3.iter_versions(bucket, "p/", page_size=2))
    assert counts["ListObjectVersions"] == 3
    assert [c.get_object(Bucket=bucket, Key="p/x", VersionId=e.version_id)["Body"].read() for e in flat] == [
        b"4",
        b"3",
        b"2",
        b"1",
        b"0",
    ]


SKIP_LAYOUT = [
    ".dr-tasks/lock.json",
    "a-before",
    *[f"snapshots/s{i:02}/k.txt" for i in range(30)],
    "snapshots0",  # sorts right after the skipped range: must still be listed
    "snapshotsz/x",
    "state",  # a key named like a directory
    "state-x",  # sorts between "state" and "state/"
    "state/a",
    "state/deep/er/k",
    "zz.txt",
]


@pytest.mark.parametrize("operation", ["ListObjectVersions", "ListObjectsV2"])
def test_skipped_prefixes_are_not_listed_and_no_other_key_is_lost(server, operation):
    """Live-key listings go around snapshots/: their cost must not grow with the snapshots kept."""
    bucket = new_bucket(server)
    c = server.client()
    for k in SKIP_LAYOUT:
        c.put_object(Bucket=bucket, Key=k, Body=b"1")
        c.put_object(Bucket=bucket, Key=k, Body=b"22")  # two versions each
    c.delete_object(Bucket=bucket, Key="state-x")  # and a delete marker
    skip = ("snapshots/", ".dr-tasks/")

    def listed(skip: tuple[str, ...]) -> tuple[list[tuple[str, str | None]], int]:
        with count_requests() as counts:
            s3 = make_s3(server)  # the counting hook goes on clients made inside the block
            if operation == "ListObjectVersions":
                got = [(v.key, v.version_id) for v in s3.iter_versions(bucket, "", page_size=3, skip=skip)]
            else:
                got = [(o.key, None) for o in s3.iter_objects(bucket, "", skip=skip, page_size=3)]
        return got, counts[operation]

    everything, all_requests = listed(())
    got, requests = listed(skip)
    assert {k for k, _ in everything} >= set(SKIP_LAYOUT) - {"state-x"}
    # every other entry, in the same order; of a skipped prefix at most the page that ran into it
    assert [e for e in got if not e[0].startswith(skip)] == [e for e in everything if not e[0].startswith(skip)]
    assert sum(k.startswith("snapshots/") for k, _ in got) <= 3, got
    # the plain pages up to snapshots/, one delimited listing, then "snapshotsz/" and "state/" on their own
    assert requests < all_requests / 2, (requests, all_requests)


def test_a_delete_marker_in_a_skipped_prefix_never_makes_a_key_listed_twice(server):
    """moto ends a page with its delete markers: resuming from the last entry re-listed keys already yielded."""
    bucket = new_bucket(server)
    c = server.client()
    c.put_object(Bucket=bucket, Key="snapshots/old/x", Body=b"x")
    c.delete_object(Bucket=bucket, Key="snapshots/old/x")
    live = [f"state/{i:02}" for i in range(10)]
    for k in live:
        c.put_object(Bucket=bucket, Key=k, Body=b"1")
    s3 = make_s3(server)
    for page_size in (2, 3, 4):
        got = [v.key for v in s3.iter_versions(bucket, "", page_size=page_size, skip=("snapshots/",))]
        assert [k for k in got if not k.startswith("snapshots/")] == live, (page_size, got)


def test_a_skipped_prefix_deeper_down_and_one_that_sorts_last_are_gone_around_too(server):
    bucket = new_bucket(server)
    c = server.client()
    layout = [
        "a.txt",
        "state/a/k",
        *[f"state/snaps/{i:02}" for i in range(20)],
        "state/snaps0",
        "state/z/k",
        *[f"zsnaps/{i:02}" for i in range(20)],
        "zz",
    ]
    for k in layout:
        c.put_object(Bucket=bucket, Key=k, Body=b"1")
    skip = ("state/snaps/", "zsnaps/")
    with count_requests() as counts:
        got = [v.key for v in make_s3(server).iter_versions(bucket, "", page_size=3, skip=skip)]
    assert [k for k in got if not k.startswith(skip)] == [k for k in layout if not k.startswith(skip)]
    assert sum(k.startswith(skip) for k in got) <= 6, got  # at most a page of each
    assert counts["ListObjectVersions"] < len(layout) / 3, counts


def test_objects_over_the_single_copy_limit_use_multipart_copy(server, monkeypatch):
    bucket = new_bucket(server)
    c = server.client()
    data = os.urandom(12 * 1024 * 1024)
    c.put_object(Bucket=bucket, Key="big.bin", Body=data)
    monkeypatch.setattr(settings, "MAX_SINGLE_COPY", 5 * 1024 * 1024)
    monkeypatch.setattr(settings, "COPY_PART_SIZE", 5 * 1024 * 1024)
    with count_requests() as counts:
        s3 = make_s3(server)
        src = next(s3.iter_current(bucket, "big.bin", versioned=True))
        s3.copy(bucket, src, bucket, "copy/big.bin")
    assert counts["UploadPartCopy"] == 3 and counts["CopyObject"] == 0
    assert c.get_object(Bucket=bucket, Key="copy/big.bin")["Body"].read() == data


def test_copy_of_a_missing_version_names_the_key(server):
    bucket = new_bucket(server)
    s3 = make_s3(server)
    src = s3mod.ObjectVersion("nope/x.txt", None, 1, "", None)  # type: ignore[arg-type]
    with pytest.raises(s3mod.S3Error, match=r"CopyObject .*nope/x.txt"):
        s3.copy(bucket, src, bucket, "dst/x.txt")


def test_delete_keys_batches_by_thousand(moto_server):
    bucket = new_bucket(moto_server)
    s3 = make_s3(moto_server)
    with count_requests() as counts:
        s3 = make_s3(moto_server)
        errors = s3.delete_keys(bucket, (f"k{i}" for i in range(1500)))
    assert errors == [] and counts["DeleteObjects"] == 2


def test_our_listing_parse_reads_what_botocore_reads_even_when_url_encoded(server):
    """botocore asks for EncodingType=url; our one-pass parse must decode keys as botocore does."""
    bucket = new_bucket(server)
    c = server.client()
    keys = ["dir/a b+c.txt", "dir/caf\u00e9/x.txt", "dir/plain.txt", "dir/amp&lt;.txt"]
    for k in keys:
        c.put_object(Bucket=bucket, Key=k, Body=b"1")
        c.put_object(Bucket=bucket, Key=k, Body=b"22")
    c.delete_object(Bucket=bucket, Key=keys[0])
    page = c.list_object_versions(Bucket=bucket, Prefix="dir/")
    theirs = {
        (x["Key"], x["VersionId"], x.get("Size", 0), x.get("ETag", ""), x["LastModified"], x["IsLatest"], marker)
        for marker, group in ((False, page.get("Versions", [])), (True, page.get("DeleteMarkers", [])))
        for x in group
    }
    s3 = make_s3(server)
    ours = {
        (e.key, e.version_id, e.size, e.etag, e.last_modified, e.is_latest, e.is_delete_marker)
        for e in s3.iter_versions(bucket, "dir/")
    }
    assert len(ours) == 9 and ours == theirs
    current = {
        (o["Key"], o["Size"], o["ETag"], o["LastModified"]) for o in c.list_objects_v2(Bucket=bucket)["Contents"]
    }
    assert {(o.key, o.size, o.etag, o.last_modified) for o in s3.iter_objects(bucket, "dir/")} == current
    # The S3 object's own client still answers as botocore does for anyone else who calls it.
    assert len(s3.client.list_object_versions(Bucket=bucket, Prefix="dir/")["Versions"]) == 8


def test_a_listing_that_says_more_without_a_new_marker_is_refused_not_followed_forever(server):
    """A broken store answering "truncated" with no marker, or the same one again, would page forever."""
    bucket = new_bucket(server)
    c = server.client()
    for i in range(3):
        c.put_object(Bucket=bucket, Key=f"k/{i}", Body=b"x")
    s3 = make_s3(server)
    markers: dict[str, str] = {}

    def stuck(response_dict: dict, **_: object) -> None:
        # After our parse took the entries, what is left says "more"; with a
        # remembered marker it is the previous page's marker again.
        root = ET.fromstring(response_dict["body"])
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        root.find(ns + "IsTruncated").text = "true"
        for el in root.findall(ns + "NextKeyMarker") + root.findall(ns + "NextVersionIdMarker"):
            root.remove(el)
        if markers.get("key"):
            ET.SubElement(root, ns + "NextKeyMarker").text = markers["key"]
        response_dict["body"] = ET.tostring(root)

    s3.client.meta.events.register_last("before-parse.s3.ListObjectVersions", stuck)
    with pytest.raises(s3mod.S3Error, match="goes on but sent no new page marker"):
        list(s3.iter_versions(bucket, "k/", page_size=3))  # one page, "truncated", no marker
    markers["key"] = "k/1"
    with count_requests() as counts:
        s3 = make_s3(server)
        s3.client.meta.events.register_last("before-parse.s3.ListObjectVersions", stuck)
        with pytest.raises(s3mod.S3Error, match="goes on but sent no new page marker"):
            list(s3.iter_versions(bucket, "k/", page_size=2))  # page 2 names k/1 again
    assert counts["ListObjectVersions"] == 2


def test_stream_copies_overlap_parts_but_hold_at_most_stream_buffers_in_memory(moto_server, moto2, monkeypatch):
    # Four 12 MiB objects streamed at once in 5 MiB parts, with a budget of 3
    # parts: the parts read and not yet uploaded never exceed it, whatever
    # the number of objects in flight, and every copy is byte for byte.
    import hashlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(settings, "STREAM_BUFFERS", 3)
    src_bucket, dst_bucket = new_bucket(moto_server), new_bucket(moto2)
    blobs = {f"big/{i}.bin": os.urandom(12 * 1024 * 1024) for i in range(4)}
    for key, data in blobs.items():
        moto_server.client().put_object(Bucket=src_bucket, Key=key, Body=data)
    alive, peak, lock = [0], [0], threading.Lock()
    read_full = streaming._read_full

    def counted_read(body, n):  # type: ignore[no-untyped-def]
        chunk = read_full(body, n)
        if chunk:
            with lock:
                alive[0] += 1
                peak[0] = max(peak[0], alive[0])
        return chunk

    def sent(**_):  # type: ignore[no-untyped-def]
        with lock:
            alive[0] -= 1

    monkeypatch.setattr(streaming, "_read_full", counted_read)
    monkeypatch.setattr(
        counting, "_CLIENT_HOOKS", [("after-call.s3.UploadPart", sent), ("after-call.s3.PutObject", sent)]
    )
    src, dst = make_s3(moto_server), make_s3(moto2)
    with ThreadPoolExecutor(4) as pool:
        moved = list(pool.map(lambda k: dst.stream_copy(src, src_bucket, k, dst_bucket, k, 5 * 1024 * 1024), blobs))
    assert [m.size for m in moved] == [len(d) for d in blobs.values()]
    for key, data in blobs.items():
        got = moto2.client().get_object(Bucket=dst_bucket, Key=key)["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert 2 <= peak[0] <= 3
    assert all(dst._buffers.acquire(blocking=False) for _ in range(3))  # every buffer was given back
