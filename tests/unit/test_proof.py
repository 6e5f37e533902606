"""`dr_tasks.proof`: the one decision on whether bytes are the expected ones."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from dr_tasks import proof
from dr_tasks.ops.recover import _same
from dr_tasks.proof import Verdict
from dr_tasks.transport import ObjectVersion

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


# ---------------------------------------------------------------------- recover's "same"
def _o(etag: str, size: int = 18) -> ObjectVersion:
    return ObjectVersion("k", "v", size, f'"{etag}"', datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_recover_same_needs_a_record_or_equal_etags() -> None:
    primary, backup = _o(MD5), _o(MULTI)
    assert _same(_o(MD5), _o(MD5), None, None).proven
    assert _same(primary, backup, [MD5, 18, MULTI], None).proven  # the state's record of this very copy
    assert _same(_o("1" * 32), backup, [MD5, 18, MULTI], None).mismatch  # same size, other bytes
    assert _same(primary, backup, None, None).verdict is Verdict.UNVERIFIABLE  # size alone: reported
    assert _same(_o(MD5, 17), backup, None, None).mismatch
    # a record of a backup object that is no longer the one listed vouches for nothing
    assert _same(primary, backup, [MD5, 18, "f" * 32], None).verdict is Verdict.UNVERIFIABLE
    # recover's own record of writing `primary` from `backup`
    rewrite = {"etag": "2" * 32 + "-2", "size": 18, "from_etag": MULTI, "source_etag": None}
    assert _same(_o("2" * 32 + "-2"), backup, None, rewrite).proven
    assert _same(_o("3" * 32 + "-2"), backup, None, rewrite).verdict is Verdict.UNVERIFIABLE


def test_a_one_part_multipart_etag_is_a_hash_of_the_bytes() -> None:
    import hashlib

    from dr_tasks import proof

    data = b"one part"
    md5 = hashlib.md5(data).hexdigest()
    one_part = hashlib.md5(hashlib.md5(data).digest()).hexdigest() + "-1"
    assert proof.in_transit(len(data), len(data), md5, one_part).proven
    other = hashlib.md5(b"one pArt").hexdigest()
    assert proof.in_transit(len(data), len(data), other, one_part).mismatch
    assert not proof.in_transit(len(data), len(data), md5, one_part, encrypted=True).proven
