"""`dr_tasks.proof`: the one decision on whether bytes are the expected ones."""

from __future__ import annotations

import hashlib

import pytest

from dr_tasks import proof
from dr_tasks.proof import Verdict

DATA = b"the recorded bytes"
MD5 = hashlib.md5(DATA).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()
MULTI = "0123456789abcdef0123456789abcdef-2"


@pytest.mark.parametrize(
    ("etag", "size", "recorded", "verdict"),
    [
        (MD5, 18, [MD5], Verdict.PROVEN),
        (f'"{MD5.upper()}"', 18, [MD5], Verdict.PROVEN),  # quotes and case are not content
        (MULTI, 18, [MULTI], Verdict.PROVEN),  # exact equality, whatever the shape
        (MULTI, 18, [MD5], Verdict.UNVERIFIABLE),  # a multipart ETag of the right size proves nothing
        (MD5, 18, [MULTI, None, ""], Verdict.UNVERIFIABLE),
        (MD5, 17, [MD5], Verdict.MISMATCH),  # the size only ever refuses
        ("0" * 32, 18, [], Verdict.UNVERIFIABLE),
    ],
)
def test_by_etag(etag: str, size: int, recorded: list[str | None], verdict: Verdict) -> None:
    assert proof.by_etag(size, etag, expected_size=18, recorded=recorded).verdict is verdict


def test_by_bytes_prefers_a_recorded_sha256_and_otherwise_needs_an_md5_equal_to_a_recorded_etag() -> None:
    md5, sha = MD5, SHA
    assert proof.by_bytes(18, md5, sha, expected_size=18, sha256=SHA).proven
    assert proof.by_bytes(18, md5, "f" * 64, expected_size=18, sha256=SHA).mismatch
    # a recorded sha256 decides even when an ETag would match
    assert proof.by_bytes(18, md5, "f" * 64, expected_size=18, sha256=SHA, recorded=[MD5]).mismatch
    assert proof.by_bytes(18, md5, sha, expected_size=18, recorded=[MULTI, MD5]).proven
    assert proof.by_bytes(18, md5, sha, expected_size=18, recorded=[MULTI]).verdict is Verdict.UNVERIFIABLE
    assert proof.by_bytes(17, md5, sha, expected_size=18, sha256=SHA).mismatch


def test_in_transit_refuses_on_shape_but_never_accepts_on_it() -> None:
    assert proof.in_transit(18, 18, MD5, MD5).proven
    assert proof.in_transit(17, 18, MD5, MD5).mismatch
    assert proof.in_transit(18, 18, "0" * 32, MD5).mismatch
    # an SSE-KMS / SSE-C ETag is no MD5 even with that shape; a multipart one never is
    assert proof.in_transit(18, 18, "0" * 32, MD5, encrypted=True).verdict is Verdict.UNVERIFIABLE
    assert proof.in_transit(18, 18, MD5, MULTI).verdict is Verdict.UNVERIFIABLE
    assert proof.in_transit(18, 18, None, MD5).verdict is Verdict.UNVERIFIABLE
