"""A listing page's entries come out in the server's newest-first order per key, never re-sorted by time."""

from __future__ import annotations

from datetime import datetime, timezone

from dr_tasks.transport import ObjectVersion
from dr_tasks.transport.listing import _merge_page

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


def test_moto_shape_merges_the_two_lists_by_time_keeping_each_lists_order():
    later = T.replace(second=5)
    entries = [v("a", "v2"), v("a", "v1"), v("b", "v3", latest=True), dm("a", "dm", when=later)]
    assert [(e.key, e.version_id) for e in _merge_page(entries)] == [("a", "dm"), ("a", "v2"), ("a", "v1"), ("b", "v3")]
    # within the versions list the server's order stands even where the stamps disagree
    skewed = [v("a", "v2", latest=True, when=T.replace(second=1)), v("a", "v1", when=later), dm("a", "dm", when=T)]
    assert [e.version_id for e in _merge_page(skewed)] == ["v2", "v1", "dm"]


def test_an_interleaved_or_single_kind_page_is_never_reordered_by_time():
    """AWS and RGW send true order: a version stamped later but listed as older stays where it is."""
    early, late = T.replace(second=1), T.replace(second=9)
    interleaved = [v("a", "cur", latest=True, when=early), dm("a", "dm", when=T), v("a", "old", when=late)]
    assert [e.version_id for e in _merge_page(interleaved)] == ["cur", "dm", "old"]
    versions_only = [v("a", "cur", latest=True, when=early), v("a", "old", when=late)]
    assert [e.version_id for e in _merge_page(versions_only)] == ["cur", "old"]


def test_moto_shape_with_many_keys_comes_out_in_key_order_each_key_merged():
    t = [T.replace(second=s) for s in range(10)]
    versions = [v("a", "a2", True, t[5]), v("a", "a1", when=t[1]), v("b", "b1", True, t[2]), v("c", "c1", when=t[3])]
    markers = [dm("a", "am", when=t[3]), dm("c", "cm", True, t[4]), dm("d", "dm", True, t[6])]
    got = [e.version_id for e in _merge_page(versions + markers)]
    assert got == ["a2", "am", "a1", "b1", "cm", "c1", "dm"]
