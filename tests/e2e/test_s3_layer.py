"""The S3 layer against real servers: listing order, big copies, request counts."""

from __future__ import annotations

import os

import pytest

from dr_tasks import s3 as s3mod
from dr_tasks.s3 import S3, count_requests
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
    s3 = make_s3(moto_server)
    pages = []
    paginator = s3.client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix="p/", PaginationConfig={"PageSize": 2}):
        pages.append(list(s3mod._merge_page(page)))
    assert len(pages) == 3
    flat = [e for p in pages for e in p]
    assert [c.get_object(Bucket=bucket, Key="p/x", VersionId=e.version_id)["Body"].read() for e in flat] == [
        b"4",
        b"3",
        b"2",
        b"1",
        b"0",
    ]


def test_objects_over_the_single_copy_limit_use_multipart_copy(server, monkeypatch):
    bucket = new_bucket(server)
    c = server.client()
    data = os.urandom(12 * 1024 * 1024)
    c.put_object(Bucket=bucket, Key="big.bin", Body=data)
    monkeypatch.setattr(s3mod, "MAX_SINGLE_COPY", 5 * 1024 * 1024)
    monkeypatch.setattr(s3mod, "COPY_PART_SIZE", 5 * 1024 * 1024)
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


def test_the_raw_server_order_lines_up_with_parsed_keys_even_when_url_encoded(server):
    """botocore asks for EncodingType=url; the raw order must be decoded the same way or it never matches."""
    bucket = new_bucket(server)
    c = server.client()
    keys = ["dir/a b+c.txt", "dir/caf\u00e9/x.txt", "dir/plain.txt"]
    for k in keys:
        c.put_object(Bucket=bucket, Key=k, Body=b"1")
        c.put_object(Bucket=bucket, Key=k, Body=b"2")
    c.delete_object(Bucket=bucket, Key=keys[0])
    s3 = make_s3(server)
    page = next(iter(s3.client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="dir/")))
    raw = page["DrServerOrder"]
    parsed = {(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])}
    assert len(parsed) == 7 and set(raw) == parsed
