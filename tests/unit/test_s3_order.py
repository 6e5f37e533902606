"""The server's newest-first order survives botocore splitting versions from delete markers."""

from __future__ import annotations

from datetime import datetime, timezone

from dr_tasks.s3 import _merge_page

T = datetime(2026, 4, 15, 18, 0, tzinfo=timezone.utc)


def page(order=None):
    p = {
        "Versions": [
            {"Key": "a", "VersionId": "v2", "Size": 1, "ETag": '"e"', "LastModified": T, "IsLatest": False},
            {"Key": "a", "VersionId": "v1", "Size": 1, "ETag": '"e"', "LastModified": T, "IsLatest": False},
            {"Key": "b", "VersionId": "v3", "Size": 1, "ETag": '"e"', "LastModified": T, "IsLatest": True},
        ],
        "DeleteMarkers": [{"Key": "a", "VersionId": "dm", "LastModified": T, "IsLatest": True}],
    }
    if order is not None:
        p["DrServerOrder"] = order
    return p


def test_raw_server_order_is_kept_for_same_second_ties():
    got = [(e.key, e.version_id) for e in _merge_page(page([("a", "dm"), ("a", "v2"), ("a", "v1"), ("b", "v3")]))]
    assert got == [("a", "dm"), ("a", "v2"), ("a", "v1"), ("b", "v3")]


def test_without_raw_order_the_latest_comes_first_among_ties():
    got = [(e.key, e.version_id, e.is_delete_marker) for e in _merge_page(page())]
    assert got[0] == ("a", "dm", True)
    assert got[-1] == ("b", "v3", False)


def test_timestamps_decide_before_the_raw_order():
    """moto writes every version before every marker; the newer marker still comes first."""
    p = page([("a", "v2"), ("a", "v1"), ("b", "v3"), ("a", "dm")])
    later = T.replace(second=5)
    p["DeleteMarkers"][0]["LastModified"] = later
    got = [(e.key, e.version_id) for e in _merge_page(p)]
    assert got == [("a", "dm"), ("a", "v2"), ("a", "v1"), ("b", "v3")]
