"""The one manifest parser: every reader (verify, rollback, reindex) and `dr.snapshot` go through it."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from dr_tasks.manifest import Manifest, ManifestEntry, ManifestError, format_manifest, parse_manifest, write_manifest

SNAP = "2026-04-15T18:00:00Z-good"


def entry(key: str = "state/a", **over: Any) -> dict[str, Any]:
    base = {"key": key, "size": 3, "etag": "abc", "version_id": "v1", "last_modified": "x", "sha256": None}
    return {**base, "copy_etag": None, **over}


def doc(**over: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "id": SNAP,
        "label": "good",
        "ts": "2026-04-15T18:00:00Z",
        "prefix": "",
        "objects": [entry()],
        **over,
    }


def parse(value: Any) -> Manifest:
    return parse_manifest(json.dumps(value).encode(), SNAP)


def test_an_entrys_fields_the_parser_does_not_know_are_kept() -> None:
    m = parse(doc(objects=[entry(copy_etag="def", future_field=[1])]))
    assert m.objects[0].copy_etag == "def" and m.objects[0].extra == {"future_field": [1]}
    assert json.loads(format_manifest(m))["objects"] == [entry(copy_etag="def", future_field=[1])]


def test_a_good_manifest_is_typed_and_round_trips_with_fields_it_does_not_know() -> None:
    m = parse(doc(sha256_recorded_at="2026-04-16T00:00:00Z"))
    assert m.objects == [ManifestEntry("state/a", 3, "abc", "v1", "x", None)]
    assert m.label == "good" and m.prefix == "" and m.bytes == 3
    assert json.loads(format_manifest(m)) == {
        **doc(sha256_recorded_at="2026-04-16T00:00:00Z"),
        "bucket": None,
        "source": None,
        "dest": None,
        "versioned": None,
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([], "[] is not a JSON object"),
        (None, "None is not a JSON object"),
        ({"objects": 5}, "names id None"),
        (doc(objects=5), "objects is 5, not a list"),
        (doc(objects=None), "objects is None, not a list"),
        (doc(objects=[entry(["state", "a"])]), "key ['state', 'a'], not a non-empty string"),
        (doc(objects=[entry("")]), "key '', not a non-empty string"),
        (doc(objects=[7]), "object 0 is 7, not a JSON object"),
        (doc(objects=[entry(size=True)]), "size True"),
        (doc(objects=[entry(size=-1)]), "size -1"),
        (doc(objects=[entry(etag=None)]), "ETag None"),
        (doc(objects=[entry(version_id=5)]), "version_id 5"),
        (doc(objects=[entry(copy_etag=["x"])]), "copy_etag ['x']"),
        (doc(objects=[entry(), entry()]), "names 'state/a' more than once"),
        (doc(v=2), "format version 2"),
        (doc(versioned="yes"), "versioned is 'yes'"),
        (doc(label=["x"]), "label is ['x']"),
    ],
)
def test_a_damaged_manifest_is_one_line_naming_what_is_wrong(value: Any, problem: str) -> None:
    with pytest.raises(ManifestError) as e:
        parse(value)
    assert problem in e.value.problem
    assert e.value.message.startswith(f"the manifest of snapshot {SNAP} is damaged: ")
    assert "\n" not in e.value.message and e.value.hint


def test_not_json_is_refused() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest(b"\xff{", SNAP)


def test_format_refuses_what_parse_would_refuse() -> None:
    m = parse(doc())
    m.objects.append(m.objects[0])
    with pytest.raises(ManifestError, match="more than once"):
        format_manifest(m)


def _streamed(m: Manifest) -> bytes:
    out = io.BytesIO()
    head = Manifest(m.id, m.label, m.ts, m.bucket, m.prefix, m.source, m.dest, m.versioned, [], m.extra)
    assert write_manifest(out, head, iter(m.objects)) == len(m.objects)
    return out.getvalue()


@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_manifest_written_entry_by_entry_is_the_same_bytes_as_one_formatted_whole(count: int) -> None:
    """`dr.snapshot` streams its manifest from disk: readers must see the bytes `format_manifest` gives."""
    objects = [
        ManifestEntry(f"state/caf\u00e9/\u2603 {i}\"q\\", i, "e" * 32, None if i else "v", "2026-04-15T18:00:00Z")
        for i in range(count)
    ]
    m = Manifest(SNAP, "good", "2026-04-15T18:00:00Z", "b", "", "s3://b/", "s3://b/snapshots/x/", True, objects)
    assert _streamed(m) == format_manifest(m)
    m.extra = {"later": {"a": [1, "\u00e9"]}}
    assert _streamed(m) == format_manifest(m)


def test_a_streamed_entry_the_parser_would_refuse_is_refused_before_it_is_written() -> None:
    m = Manifest(SNAP, "good", "t", "b", "", "s", "d", True, [])
    bad = ManifestEntry("state/a", -1, "e", None, None)
    with pytest.raises(ManifestError, match="size -1"):
        write_manifest(io.BytesIO(), m, [bad])
