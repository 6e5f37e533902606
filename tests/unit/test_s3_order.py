"""A listing page's entries come out newest first per key, with the server's order deciding ties."""

from __future__ import annotations

from datetime import datetime, timezone

from dr_tasks.s3 import ObjectVersion, _merge_page

T = datetime(2026, 4, 15, 18, 0, tzinfo=timezone.utc)


def v(key: str, vid: str, latest: bool = False, when: datetime = T) -> ObjectVersion:
    return ObjectVersion(key, vid, 1, '"e"', when, latest)


def dm(key: str, vid: str, latest: bool = False, when: datetime = T) -> ObjectVersion:
    return ObjectVersion(key, vid, 0, "", when, latest, True)


def test_raw_server_order_is_kept_for_same_second_ties():
    entries = [dm("a", "dm", latest=True), v("a", "v2"), v("a", "v1"), v("b", "v3", latest=True)]
    assert [(e.key, e.version_id) for e in _merge_page(entries)] == [("a", "dm"), ("a", "v2"), ("a", "v1"), ("b", "v3")]


def test_the_latest_comes_first_among_ties_whatever_the_server_order():
    """moto lists every version before every marker: IsLatest still puts the marker first."""
    entries = [v("a", "v2"), v("a", "v1"), v("b", "v3", latest=True), dm("a", "dm", latest=True)]
    got = [(e.key, e.version_id, e.is_delete_marker) for e in _merge_page(entries)]
    assert got[0] == ("a", "dm", True)
    assert got[-1] == ("b", "v3", False)


def test_timestamps_decide_before_the_raw_order():
    later = T.replace(second=5)
    entries = [v("a", "v2"), v("a", "v1"), v("b", "v3", latest=True), dm("a", "dm", when=later)]
    assert [(e.key, e.version_id) for e in _merge_page(entries)] == [("a", "dm"), ("a", "v2"), ("a", "v1"), ("b", "v3")]
