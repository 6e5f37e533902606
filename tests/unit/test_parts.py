"""The multipart ETag recomputed from the bytes (transport/parts.py), against what S3 computes."""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest
from moto import mock_aws

from dr_tasks import proof
from dr_tasks.transport import parts

MIB = 1 << 20


def s3_etag(data: bytes, part: int) -> str:
    """The ETag moto gives `data` uploaded in `part`-byte parts (S3's rule, computed by the server)."""
    with mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        c.create_bucket(Bucket="parts-etag")
        up = c.create_multipart_upload(Bucket="parts-etag", Key="k")["UploadId"]
        done = []
        for n, start in enumerate(range(0, len(data), part), 1):
            r = c.upload_part(Bucket="parts-etag", Key="k", UploadId=up, PartNumber=n, Body=data[start : start + part])
            done.append({"PartNumber": n, "ETag": r["ETag"]})
        c.complete_multipart_upload(Bucket="parts-etag", Key="k", UploadId=up, MultipartUpload={"Parts": done})
        return str(c.head_object(Bucket="parts-etag", Key="k")["ETag"]).strip('"')


DATA = os.urandom(11 * MIB + 7)


def chunks(data: bytes, size: int):
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


def test_part_hashes_reproduce_the_servers_etag_whatever_the_chunking() -> None:
    etag = s3_etag(DATA, 5 * MIB)
    for chunk in (1, 4096, MIB, 3 * MIB + 1, len(DATA)):
        h = parts.PartHashes([parts.uniform(len(DATA), 5 * MIB), parts.uniform(len(DATA), 8 * MIB)])
        for c in chunks(DATA, chunk if chunk > 1 else 1_000_003)():
            h.update(c)
        assert etag in h.etags()


def test_parts_count_reads_only_a_multipart_etag() -> None:
    assert parts.parts_count("a" * 32 + "-3") == 3
    assert parts.parts_count('"' + "A" * 32 + '-12"') == 12
    for no in ("a" * 32, "a" * 31 + "-3", "a" * 32 + "-", "a" * 32 + "-0", "x" * 32 + "-2", ""):
        assert parts.parts_count(no) is None


def test_guessed_sizes_fit_the_count_and_put_the_known_first() -> None:
    size = 11 * MIB + 7
    got = parts.guessed_part_sizes(size, 3, [5 * MIB])
    assert got[0] == 5 * MIB and all(parts.fits(size, 3, p) for p in got)
    assert 8 * MIB not in parts.guessed_part_sizes(size, 3)  # 2 parts of 8 MiB, not 3
    assert parts.guessed_part_sizes(size, 2)[0] == 8 * MIB


def _layout(first: int | None, count: int | None):
    return lambda _n: parts.Layout(first, count)


def test_prove_accepts_the_bytes_and_refuses_one_flipped_byte_when_the_server_gives_the_layout() -> None:
    etag = s3_etag(DATA, 5 * MIB)
    told = _layout(5 * MIB, 3)
    assert parts.prove(etag, len(DATA), chunks(DATA, MIB), told, lambda n: None).proven
    bad = DATA[:9] + bytes([DATA[9] ^ 1]) + DATA[10:]
    p = parts.prove(etag, len(bad), chunks(bad, MIB), told, lambda n: None)
    assert p.mismatch and etag in p.why


def test_prove_without_a_layout_guesses_usual_sizes_and_otherwise_proves_nothing() -> None:
    etag = s3_etag(DATA, 5 * MIB)
    untold = _layout(None, None)
    assert parts.prove(etag, len(DATA), chunks(DATA, MIB), untold, lambda n: None).proven
    odd = s3_etag(DATA, 5 * MIB + 4096)  # a size no uploader uses: not among the guesses
    p = parts.prove(odd, len(DATA), chunks(DATA, MIB), untold, lambda n: None)
    assert p.verdict is proof.Verdict.UNVERIFIABLE and "unusual size" in p.why
    # ... but the configured part size is tried first
    assert parts.prove(odd, len(DATA), chunks(DATA, MIB), untold, lambda n: None, [5 * MIB + 4096]).proven


def test_prove_asks_for_every_part_only_when_the_told_layout_is_uneven() -> None:
    data = os.urandom(16 * MIB)
    lengths = [6 * MIB, 5 * MIB, 5 * MIB]
    digests, start = [], 0
    for n in lengths:
        digests.append(hashlib.md5(data[start : start + n]).digest())
        start += n
    etag = parts.etag_of(digests)
    asked: list[int] = []

    def every(n: int) -> list[int]:
        asked.append(n)
        return lengths

    assert parts.prove(etag, len(data), chunks(data, MIB), _layout(6 * MIB, 3), every).proven
    assert asked == [3]


@pytest.mark.parametrize("size", [5 * MIB, 5 * MIB + 1, 8 * MIB * 3])
def test_uniform_cuts_add_up(size: int) -> None:
    for p in (5 * MIB, 8 * MIB):
        cut = parts.uniform(size, p)
        assert sum(cut) == size and all(n == p for n in cut[:-1]) and 0 < cut[-1] <= p
