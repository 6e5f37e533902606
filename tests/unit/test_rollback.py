"""The parts of `dr.rollback` that need no server: labels, the plan, the snapshot check, the manifest check."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dr_tasks import DrError, load_config
from dr_tasks.config import DrConfig
from dr_tasks.manifest import parse_manifest
from dr_tasks.ops.rollback import (
    SAFETY_PREFIX,
    RollbackPlan,
    build_plan,
    check_confirm_label,
    check_snapshot_objects,
    safety_label,
)
from dr_tasks.ops.rollback_plan import _manifest_objects
from dr_tasks.ops.snapshot import validate_label
from dr_tasks.transport import ObjectVersion

WHEN = datetime(2026, 4, 15, 18, 0, tzinfo=timezone.utc)
SNAP = "2026-04-15T18:00:00Z-good"


def cfg(tmp_path: Path, **raw: object) -> DrConfig:
    return load_config({"bucket": "unit-bucket", **raw}, tmp_path)


def obj(key: str, size: int, etag: str) -> ObjectVersion:
    return ObjectVersion(key=key, version_id="v1", size=size, etag=f'"{etag}"', last_modified=WHEN)


def m(key: str, size: int, etag: str) -> dict[str, object]:
    return {"key": key, "size": size, "etag": etag, "version_id": "v0", "last_modified": "x", "sha256": None}


# ---------------------------------------------------------------------- safety label
def test_safety_label_is_the_plain_prefix_when_it_fits() -> None:
    assert safety_label("good") == "pre-rollback-good"
    fits = "x" * (63 - len(SAFETY_PREFIX))
    assert safety_label(fits) == SAFETY_PREFIX + fits
    assert safety_label("pre-rollback-good") == "pre-rollback-pre-rollback-good"


@pytest.mark.parametrize("label", ["y" * (64 - len(SAFETY_PREFIX)), "a" * 63, "UPPER and spaces/slashes", "caf\u00e9"])
def test_safety_label_cuts_and_hashes_what_would_not_fit(label: str) -> None:
    got = safety_label(label)
    assert validate_label(got) == got and len(got) <= 63
    assert got.startswith(SAFETY_PREFIX)
    assert got != safety_label(label + "z")  # distinct labels stay distinct


def test_safety_labels_of_long_labels_sharing_a_start_differ() -> None:
    a, b = "m" * 60 + "-one", "m" * 60 + "-two"
    assert safety_label(a) != safety_label(b)
    assert safety_label(a)[: 63 - 9] == safety_label(b)[: 63 - 9]


# ---------------------------------------------------------------------- confirm label
def test_confirm_label_equal_passes() -> None:
    check_confirm_label("good", "good", SNAP)


@pytest.mark.parametrize(("given", "at"), [("goo", 3), ("Good", 0), ("good ", 4), ("gooe", 3), ("", 0)])
def test_confirm_label_differences_name_both_labels_and_the_byte(given: str, at: int) -> None:
    with pytest.raises(DrError) as e:
        check_confirm_label("good", given, SNAP)
    text = str(e.value)
    assert repr(given) in text and "'good'" in text and f"differ at byte {at}" in text
    assert "--confirm-label=good" in text


def test_missing_confirm_label_names_the_label() -> None:
    with pytest.raises(DrError, match="no --confirm-label was given") as e:
        check_confirm_label("good", None, SNAP)
    assert "'good'" in str(e.value)


# ---------------------------------------------------------------------- manifest
def test_manifest_keys_that_are_not_live_are_refused(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    good = {"id": SNAP, "prefix": "", "objects": [m("state/a", 1, "e")]}

    def objects(doc: dict[str, object]) -> list[dict[str, object]]:
        return _manifest_objects(c, SNAP, parse_manifest(json.dumps(doc).encode(), SNAP))

    assert objects(good) == [{**m("state/a", 1, "e"), "copy_etag": None}]
    for bad_key in ("snapshots/other/state/a", ".dr-tasks/lock"):
        with pytest.raises(DrError, match="not a live key"):
            objects({**good, "objects": [m(bad_key, 1, "e")]})
    with pytest.raises(DrError, match="more than once"):
        objects({**good, "objects": [m("state/a", 1, "e"), m("state/a", 1, "e")]})
    with pytest.raises(DrError, match="names id 'other'"):
        objects({**good, "id": "other"})
    with pytest.raises(DrError, match="size '1', not a whole number"):
        objects({**good, "objects": [{"key": "state/a", "size": "1"}]})
    with pytest.raises(DrError, match="prefix"):
        objects({**good, "prefix": "elsewhere/"})


# ---------------------------------------------------------------------- snapshot check
def test_snapshot_check_names_missing_resized_and_altered_objects(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    base = f"snapshots/{SNAP}/"
    manifest = [m("state/ok", 3, "e1"), m("state/gone", 3, "e2"), m("state/short", 3, "e3"), m("state/edit", 3, "e4")]
    listing = [obj(base + "state/ok", 3, "e1"), obj(base + "state/short", 2, "e3"), obj(base + "state/edit", 3, "zz")]
    with pytest.raises(DrError) as e:
        check_snapshot_objects(c, SNAP, manifest, listing)
    text = str(e.value)
    assert "3 of 4 objects" in text
    assert "state/gone (missing)" in text
    assert "state/short (size 2, recorded 3)" in text
    assert "state/edit (ETag zz is none of the recorded e4)" in text
    assert "state/ok" not in text.split("s3://")[1].split(":", 1)[1]


def test_snapshot_check_accepts_a_new_etag_for_a_multipart_original_only_as_recorded(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    base = f"snapshots/{SNAP}/"
    entry = {**m("state/big", 9, "abc-3"), "copy_etag": "def"}
    present = check_snapshot_objects(c, SNAP, [entry], [obj(base + "state/big", 9, "def")])
    assert set(present) == {"state/big"}
    with pytest.raises(DrError, match="not proven intact"):
        check_snapshot_objects(c, SNAP, [m("state/big", 9, "abc-3")], [obj(base + "state/big", 9, "def")])


# ---------------------------------------------------------------------- plan
def test_plan_sorts_every_key_into_one_group(tmp_path: Path) -> None:
    c = cfg(tmp_path, preserve=["state/log/snapshots.ndjson", "state/keep/**"])
    base = f"snapshots/{SNAP}/"
    manifest = [
        m("state/same", 1, "s"),
        m("state/changed", 2, "c"),
        m("state/resized", 2, "r"),
        m("state/missing", 3, "m"),
        m("state/log/snapshots.ndjson", 4, "old-index"),
        m("state/keep/x", 5, "k"),
    ]
    snap = {x["key"]: obj(base + str(x["key"]), int(x["size"]), str(x["etag"])) for x in manifest}
    live = [
        obj("state/same", 1, "s"),
        obj("state/changed", 2, "other"),
        obj("state/resized", 3, "r"),
        obj("state/added", 7, "a"),
        obj("state/log/snapshots.ndjson", 9, "new-index"),
        obj("state/keep/y", 1, "k2"),
        # not live: never planned, whatever they are
        obj(f"snapshots/{SNAP}/state/same", 1, "s"),
        obj(".dr-tasks/lock", 1, "l"),
    ]
    plan = build_plan(c, SNAP, "good", "2026-04-15T18:00:00Z", True, manifest, snap, live)
    assert [(i.key, i.reason) for i in plan.copy] == [
        ("state/changed", "changed"),
        ("state/missing", "missing"),
        ("state/resized", "changed"),
    ]
    assert [i.key for i in plan.delete] == ["state/added"]
    assert [i.key for i in plan.unchanged] == ["state/same"]
    assert [i.key for i in plan.preserved] == ["state/keep/x", "state/keep/y", "state/log/snapshots.ndjson"]
    assert plan.copy_bytes == 2 + 3 + 2 and plan.changes == 4
    assert set(plan.sources) == {"state/changed", "state/missing", "state/resized"}
    d = plan.to_dict()
    assert d["counts"] == {"copy": 3, "delete": 1, "unchanged": 1, "preserved": 3}
    assert not d["needs_allow_unversioned"]


def test_live_holding_a_copy_of_a_multipart_object_counts_as_unchanged(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    base = f"snapshots/{SNAP}/"
    manifest = [m("state/big", 9, "abc-3")]
    snap = {"state/big": obj(base + "state/big", 9, "copyetag")}
    plan = build_plan(c, SNAP, "good", None, True, manifest, snap, [obj("state/big", 9, "copyetag")])
    assert [i.key for i in plan.unchanged] == ["state/big"]


def test_with_a_prefix_keys_are_planned_relative_to_it(tmp_path: Path) -> None:
    c = cfg(tmp_path, prefix="live/")
    base = f"snapshots/{SNAP}/"
    manifest = [m("state/a", 1, "a")]
    snap = {"state/a": obj(base + "state/a", 1, "a")}
    live = [obj("live/state/a", 1, "b"), obj("live/state/extra", 1, "x"), obj("other/state/a", 1, "a")]
    plan = build_plan(c, SNAP, "good", None, True, manifest, snap, live)
    assert [i.key for i in plan.copy] == ["state/a"] and [i.key for i in plan.delete] == ["state/extra"]


def test_apply_command_quotes_what_a_shell_would_split() -> None:
    plan = RollbackPlan(SNAP, "good", None, "b", "", versioned=True)
    assert plan.apply_command() == f"inv dr.rollback {SNAP} --apply --confirm-label=good"
    odd = RollbackPlan(SNAP, "it's odd", None, "b", "", versioned=False)
    assert odd.apply_command("dr rollback") == f"dr rollback {SNAP} --apply '--confirm-label=it'\"'\"'s odd'"


def test_unversioned_needs_the_flag_only_when_data_would_be_destroyed() -> None:
    from dr_tasks.ops.rollback import PlanItem

    plan = RollbackPlan(SNAP, "good", None, "b", "", versioned=False)
    assert not plan.needs_allow_unversioned
    plan.copy.append(PlanItem("state/a", 1, "missing"))  # restoring a missing key destroys nothing
    assert not plan.needs_allow_unversioned
    plan.copy.append(PlanItem("state/b", 1, "changed"))
    assert plan.needs_allow_unversioned
    assert plan.apply_command().endswith(" --allow-unversioned")
