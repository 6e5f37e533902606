"""Which source a backup state names, and which index rows a source made."""

from __future__ import annotations

from dr_tasks.backup_rows import BackupDest, BackupSource
from dr_tasks.ops.backup_state import read_origin
from dr_tasks.rows import BackupRow

URL = "http://primary.example:9000"


def test_a_state_names_its_origin_or_the_older_source_string() -> None:
    doc = {"origin": {"endpoint_url": URL, "bucket": "a", "prefix": "repo/"}, "source": f"{URL}/a"}
    assert read_origin(doc) == BackupSource(URL, "a", "repo/")
    assert read_origin({"source": f"{URL}/a"}) == BackupSource(URL, "a", None)
    assert read_origin({"source": "aws/a"}) == BackupSource(None, "a", None)
    for bad in ({}, {"source": 5}, {"source": "aws/"}, {"origin": {"bucket": "a"}}, {"origin": [1]}):
        assert read_origin(bad) is None


def test_one_source_is_one_server_bucket_and_prefix() -> None:
    mine = BackupSource(URL, "a", "")
    assert mine.same(BackupSource(URL + "/", "a", ""), resolve=False)
    assert mine.same(BackupSource(URL, "a", None), resolve=False)  # an older state: no prefix to compare
    assert not mine.same(BackupSource(URL, "b", ""), resolve=False)
    assert not mine.same(BackupSource(URL, "a", "other/"), resolve=False)
    assert not mine.same(BackupSource("http://primary.example:9001", "a", ""), resolve=False)
    assert not mine.same(BackupSource(None, "a", ""), resolve=False)


def test_rows_count_for_a_destination_only_when_read_from_its_source() -> None:
    dest = BackupDest("cold", "", None, BackupSource(URL, "a", ""))
    row = {"kind": "cross-region-backup", "dest_bucket": "cold", "dest": "s3://cold/", "dest_endpoint": None}
    assert dest.holds(BackupRow.parse({**row, "source": "s3://a/", "source_endpoint": URL}))
    assert dest.holds(BackupRow.parse(row))  # written before the source was recorded
    assert not dest.holds(BackupRow.parse({**row, "source": "s3://b/", "source_endpoint": URL}))
    assert not dest.holds(BackupRow.parse({**row, "source": "s3://a/sub/", "source_endpoint": URL}))
    assert not dest.holds(BackupRow.parse({**row, "source": "s3://a/", "source_endpoint": "http://other:9000"}))
    # A recorded null endpoint is AWS, not "unrecorded": it does not match a custom endpoint.
    assert not dest.holds(BackupRow.parse({**row, "source": "s3://a/", "source_endpoint": None}))


def test_a_mirror_may_delete_up_to_half_of_what_the_backup_holds() -> None:
    import pytest

    from dr_tasks import load_config
    from dr_tasks.ops.backup_plan import BackupPlan, MirrorWouldEmpty, check_mirror

    cfg = load_config({"bucket": "primary"}, ".")

    def plan(present: int, deletes: int) -> BackupPlan:
        return BackupPlan([], [], 0, [f"k{i}" for i in range(deletes)], {}, present=present)

    check_mirror(cfg, plan(5, 5), True, "s3://cold/", False)  # exactly half
    check_mirror(cfg, plan(5, 6), False, "s3://cold/", False)  # no mirror: nothing is deleted
    with pytest.raises(MirrorWouldEmpty, match="would delete 6 of the 11 objects"):
        check_mirror(cfg, plan(5, 6), True, "s3://cold/", False)
    with pytest.raises(MirrorWouldEmpty, match="would delete all 1 objects"):
        check_mirror(cfg, plan(0, 1), True, "s3://cold/", False)
    check_mirror(cfg, plan(0, 1), True, "s3://cold/", True)  # --allow-mass-delete
