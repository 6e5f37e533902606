"""Rollback of snapshots whose objects carry a multipart ETag on either side of the manifest.

`dr.backup` and `dr.recover` stream objects over their part size (8 MiB) as
multipart uploads, so a snapshot brought back by `dr.recover` holds objects
whose ETag is `<hex>-<n>` while its manifest records the original single-PUT
MD5. The snapshot check accepts such an ETag only when it is recorded (the
snapshot's `copy_etag`, recover's record of its rewrite): never for its shape
or its size. The plan must not copy such an object again once it is rolled back.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dr_tasks import DrError, load_config
from dr_tasks.config import DrConfig
from dr_tasks.ops.rollback import build_plan, check_snapshot_objects
from dr_tasks.transport import ObjectVersion

WHEN = datetime(2026, 4, 15, 18, 0, tzinfo=timezone.utc)
SNAP = "2026-04-15T18:00:00Z-good"
BASE = f"snapshots/{SNAP}/"
BIG = 9 * 1024 * 1024
# The original object's MD5 (a single PUT), as the manifest records it.
MD5 = hashlib.md5(b"original").hexdigest()
# The same bytes streamed back by dr.recover in two 8 MiB parts.
RECOVERED = "1cafb1bc6731225d9567001596a2107f-2"


def cfg(tmp_path: Path) -> DrConfig:
    return load_config({"bucket": "unit-bucket"}, tmp_path)


def obj(key: str, size: int, etag: str) -> ObjectVersion:
    return ObjectVersion(key=key, version_id="v1", size=size, etag=f'"{etag}"', last_modified=WHEN)


def m(key: str, size: int, etag: str) -> dict[str, object]:
    return {"key": key, "size": size, "etag": etag, "version_id": "v0", "last_modified": "x", "sha256": None}


# ---------------------------------------------------------------------- the snapshot check
def test_an_unrecorded_multipart_etag_of_the_right_size_is_not_accepted(tmp_path: Path) -> None:
    # Its shape and its size prove nothing: without a re-read (no client here) it is refused.
    with pytest.raises(DrError, match="not proven intact") as e:
        check_snapshot_objects(
            cfg(tmp_path), SNAP, [m("state/big", BIG, MD5)], [obj(BASE + "state/big", BIG, RECOVERED)]
        )
    assert f"ETag {RECOVERED} is none of the recorded {MD5}" in str(e.value)


def test_the_copy_etag_the_snapshot_recorded_is_accepted(tmp_path: Path) -> None:
    entry = {**m("state/big", BIG, "abc-3"), "copy_etag": MD5}
    present = check_snapshot_objects(cfg(tmp_path), SNAP, [entry], [obj(BASE + "state/big", BIG, MD5)])
    assert set(present) == {"state/big"}


def test_a_recovered_copy_is_accepted_through_the_record_of_its_rewrite(tmp_path: Path) -> None:
    rw = {BASE + "state/big": {"etag": RECOVERED, "size": BIG, "from_etag": RECOVERED, "source_etag": MD5}}
    present = check_snapshot_objects(
        cfg(tmp_path), SNAP, [m("state/big", BIG, MD5)], [obj(BASE + "state/big", BIG, RECOVERED)], rewrites=rw
    )
    assert present["state/big"].etag_plain == RECOVERED
    # a record of a rewrite of other bytes vouches for nothing here
    other = {BASE + "state/big": {**rw[BASE + "state/big"], "source_etag": "f" * 32}}
    with pytest.raises(DrError, match="not proven intact"):
        check_snapshot_objects(
            cfg(tmp_path), SNAP, [m("state/big", BIG, MD5)], [obj(BASE + "state/big", BIG, RECOVERED)], rewrites=other
        )


def test_snapshot_check_still_refuses_a_recovered_object_of_another_size(tmp_path: Path) -> None:
    with pytest.raises(DrError) as e:
        check_snapshot_objects(
            cfg(tmp_path), SNAP, [m("state/big", BIG, MD5)], [obj(BASE + "state/big", BIG - 1, RECOVERED)]
        )
    assert f"state/big (size {BIG - 1}, recorded {BIG})" in str(e.value)


def test_snapshot_check_still_refuses_a_single_part_object_with_another_md5(tmp_path: Path) -> None:
    with pytest.raises(DrError, match="incomplete") as e:
        check_snapshot_objects(
            cfg(tmp_path), SNAP, [m("state/big", BIG, MD5)], [obj(BASE + "state/big", BIG, "0" * 32)]
        )
    assert f"recorded {MD5}" in str(e.value)


# ---------------------------------------------------------------------- the plan after such a rollback
def _plan_against(tmp_path: Path, live_etag: str, live_size: int = BIG) -> list[str]:
    """Plan a rollback to the recovered snapshot with live holding `live_etag`; the keys it would copy."""
    c = cfg(tmp_path)
    manifest = [m("state/big", BIG, MD5)]
    rw = {BASE + "state/big": {"etag": RECOVERED, "size": BIG, "from_etag": RECOVERED, "source_etag": MD5}}
    snap = check_snapshot_objects(c, SNAP, manifest, [obj(BASE + "state/big", BIG, RECOVERED)], rewrites=rw)
    plan = build_plan(c, SNAP, "good", None, True, manifest, snap, [obj("state/big", live_size, live_etag)])
    return [i.key for i in plan.copy]


def test_rolled_back_live_whose_copy_got_the_md5_is_unchanged(tmp_path: Path) -> None:
    # AWS and moto: CopyObject of a multipart object gives the copy the MD5 of its bytes.
    assert _plan_against(tmp_path, MD5) == []


def test_rolled_back_live_whose_copy_kept_the_multipart_etag_is_unchanged(tmp_path: Path) -> None:
    # Ceph RGW: CopyObject keeps the source's multipart ETag.
    assert _plan_against(tmp_path, RECOVERED) == []


def test_live_of_the_same_size_with_another_multipart_etag_is_still_copied_back(tmp_path: Path) -> None:
    # The size-only fallback is for the snapshot check; a same-size edit of
    # live, pushed as a multipart upload, must not pass as unchanged.
    assert _plan_against(tmp_path, "feedface" * 4 + "-2") == ["state/big"]
    assert _plan_against(tmp_path, "0" * 32) == ["state/big"]
    assert _plan_against(tmp_path, MD5, BIG + 1) == ["state/big"]
