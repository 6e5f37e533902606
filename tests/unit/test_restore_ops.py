"""`dr.restore` pieces without a server: version choice, scope, safety, diff, CLI parsing, download checks."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dr_tasks import load_config
from dr_tasks.errors import DrError
from dr_tasks.gitignore import gitignore_covers
from dr_tasks.ops.restore import (
    DIFF_LINE_CAP,
    Decisions,
    diff_file,
    resolve_scope,
    restore_at,
    structural_changes,
    versions_at,
)
from dr_tasks.transport import ObjectVersion, S3Error
from dr_tasks.transport.listing import _merge_page

UTC = timezone.utc
T = datetime(2026, 4, 15, 18, 0, tzinfo=UTC)


def v(key: str, vid: str, at: datetime, dm: bool = False, latest: bool = False, data: bytes = b"x") -> ObjectVersion:
    return ObjectVersion(key, vid, 0 if dm else len(data), "" if dm else hashlib.md5(data).hexdigest(), at, latest, dm)


def decide(entries: list[ObjectVersion], ts: datetime) -> dict[str, tuple[str, str | None]]:
    return {d.key: (d.state, d.entry.version_id if d.entry else None) for d in versions_at(entries, ts)}


# ---------------------------------------------------------------------- version choice
def test_first_entry_at_or_before_ts_wins_and_exactly_at_ts_counts() -> None:
    a = [v("a", "v3", T + timedelta(seconds=2), latest=True), v("a", "v2", T), v("a", "v1", T - timedelta(days=1))]
    assert decide(a, T) == {"a": ("present", "v2")}
    assert decide(a, T - timedelta(microseconds=1)) == {"a": ("present", "v1")}
    assert decide(a, T + timedelta(days=9)) == {"a": ("present", "v3")}


def test_delete_marker_at_ts_means_absent_and_later_keys_are_absent() -> None:
    entries = [
        v("a", "v2", T + timedelta(seconds=5), latest=True),  # re-created after the deletion
        v("a", "dm", T - timedelta(seconds=5), dm=True),
        v("a", "v1", T - timedelta(seconds=9)),
        v("b", "v1", T + timedelta(seconds=1), latest=True),  # born after TS
        v("c", "v1", T - timedelta(seconds=1), latest=True),
    ]
    assert decide(entries, T) == {"a": ("deleted", None), "b": ("not-yet", None), "c": ("present", "v1")}
    assert decide(entries, T + timedelta(seconds=5))["a"] == ("present", "v2")
    assert decide(entries, T - timedelta(seconds=6))["a"] == ("present", "v1")


def test_markers_listed_after_versions_are_merged_back_by_the_listing() -> None:
    """moto writes all of a page's versions before all its delete markers; `_merge_page` restores the order."""
    entries = list(
        _merge_page(
            [
                v("a", "v2", T + timedelta(seconds=5), latest=True),
                v("a", "v1", T - timedelta(seconds=9)),
                v("a", "dm", T - timedelta(seconds=1), dm=True),
            ]
        )
    )
    assert [e.version_id for e in entries] == ["v2", "dm", "v1"]
    assert decide(entries, T) == {"a": ("deleted", None)}
    assert decide(entries, T - timedelta(seconds=2)) == {"a": ("present", "v1")}


def test_equal_timestamps_keep_the_server_order_and_a_write_delete_tie_is_reported() -> None:
    same = [v("a", "newer", T), v("a", "older", T)]
    assert decide(same, T) == {"a": ("present", "newer")}
    assert [d.ambiguity for d in versions_at(same, T)] == [None]  # two writes: the order decides, no doubt
    # a server that lists a same-instant delete marker after the version: IsLatest settles the order
    moto_like = list(_merge_page([v("a", "ver", T), v("a", "dm", T, dm=True, latest=True)]))
    assert decide(moto_like, T) == {"a": ("deleted", None)}
    (d,) = versions_at(moto_like, T)
    assert d.ambiguity is not None and "a write and a delete share its LastModified" in d.ambiguity.reason
    assert d.ambiguity.chosen == "dm 2026-04-15T18:00:00Z (delete marker)"
    assert d.ambiguity.others == ["ver 2026-04-15T18:00:00Z"]


def test_the_server_order_wins_over_timestamps_and_says_so() -> None:
    """The current version stamped earlier than the one it replaced (a multipart upload's start time)."""
    entries = [
        v("a", "current", T - timedelta(hours=2), latest=True),
        v("a", "older", T - timedelta(hours=1)),
        v("a", "oldest", T - timedelta(hours=3)),
        v("b", "only", T - timedelta(hours=1), latest=True),
    ]
    got = {d.key: d for d in versions_at(entries, T)}
    assert got["a"].state == "present" and got["a"].entry is not None and got["a"].entry.version_id == "current"
    amb = got["a"].ambiguity
    assert amb is not None and amb.key == "a" and "1 entry listed as older has a later LastModified" in amb.reason
    assert amb.chosen == "current 2026-04-15T16:00:00Z" and amb.others == ["older 2026-04-15T17:00:00Z"]
    assert "a: " in amb.describe() and "chose current" in amb.describe()
    assert got["b"].ambiguity is None
    # Between the two stamps the order still decides, and the disagreement is still named.
    (a_mid,) = [d for d in versions_at(entries, T - timedelta(minutes=90)) if d.key == "a"]
    assert a_mid.entry is not None and a_mid.entry.version_id == "current" and a_mid.ambiguity is not None
    # Before the current one's stamp: the older stamp is after TS, the oldest is chosen, no disagreement after it.
    (a_early,) = [d for d in versions_at(entries, T - timedelta(minutes=150)) if d.key == "a"]
    assert a_early.entry is not None and a_early.entry.version_id == "oldest" and a_early.ambiguity is None


def test_keys_are_decided_as_the_listing_streams() -> None:
    consumed: list[str] = []

    def listing() -> Iterator[ObjectVersion]:
        for e in [v("a", "1", T), v("a", "0", T - timedelta(1)), v("b", "1", T), v("c", "1", T)]:
            consumed.append(f"{e.key}{e.version_id}")
            yield e

    it = versions_at(listing(), T)
    assert next(it).key == "a"
    assert consumed == ["a1", "a0", "b1"]  # decided "a" as soon as "b" began, nothing more read


def test_a_key_listed_out_of_order_is_refused() -> None:
    with pytest.raises(DrError, match="not in key order"):
        list(versions_at([v("b", "1", T), v("a", "1", T)], T))


# ---------------------------------------------------------------------- scope
@pytest.fixture
def cfg(tmp_path: Path) -> Any:
    (tmp_path / ".gitignore").write_text("_restore/\n")
    # FakeS3 stands in for boto3 only: the classic request path.
    return load_config({"bucket": "bkt", "prefix": "repo/", "transfer_client": "classic"}, tmp_path)


def test_scopes(cfg: Any) -> None:
    unit = resolve_scope(cfg, "snappy", None, False)
    assert unit.key_prefix == "repo/state/skills/snappy/" and unit.stem == "snappy"
    assert unit.name_for(cfg, "repo/state/skills/snappy/a/b.txt") == "a/b.txt"
    assert unit.name_for(cfg, "repo/state/skills/snappy-two/a.txt") is None

    d = resolve_scope(cfg, None, "state/notes/", False)
    assert (d.key_prefix, d.base, d.only, d.stem) == ("repo/state/notes/", "state/notes/", None, "_path-state-notes")
    f = resolve_scope(cfg, None, "./state/notes", False)
    assert (f.key_prefix, f.base, f.only) == ("repo/state/notes", "state/", "notes")
    assert f.name_for(cfg, "repo/state/notes/x.txt") == "notes/x.txt"
    assert f.name_for(cfg, "repo/state/notes-other/x.txt") is None

    a = resolve_scope(cfg, None, None, True)
    assert a.key_prefix == "repo/" and a.stem == "_all"
    assert a.name_for(cfg, "repo/state/x") == "state/x"
    assert a.name_for(cfg, "repo/_restore/old/x") is None
    # with the default prefix "" snapshots and dr-tasks' own keys lie under it, and are not live
    flat = load_config({"bucket": "bkt"}, cfg.root)
    everything = resolve_scope(flat, None, None, True)
    assert everything.name_for(flat, "snapshots/2026-01-01T00:00:00Z-x/state/x") is None
    assert everything.name_for(flat, ".dr-tasks/lock") is None
    assert everything.name_for(flat, "state/x") == "state/x"
    with pytest.raises(DrError, match="not live state"):
        resolve_scope(flat, None, "snapshots/", False)


@pytest.mark.parametrize(
    ("unit", "path", "all_", "needle"),
    [
        (None, None, False, "exactly one"),
        ("u", "p/", False, "exactly one"),
        ("u", None, True, "exactly one"),
        ("a/b", None, False, "not a unit name"),
        ("..", None, False, "not a unit name"),
        ("a\x00b", None, False, "not a unit name"),
        (None, "../x/", False, "'.' or '..' segment"),
        (None, "/etc/", False, "absolute path"),
        (None, "a//b/", False, "empty path segment"),
        (None, ".", False, "use --all"),
    ],
)
def test_bad_scopes(cfg: Any, unit: str | None, path: str | None, all_: bool, needle: str) -> None:
    with pytest.raises(DrError, match=needle.replace("(", r"\(")):
        resolve_scope(cfg, unit, path, all_)


# ---------------------------------------------------------------------- gitignore
@pytest.mark.parametrize(
    ("files", "covered"),
    [
        ({".gitignore": "_restore/\n"}, True),
        ({".gitignore": "/_restore/\n"}, True),
        ({".gitignore": "_restore\n"}, True),
        ({".gitignore": "_restore/**\n"}, True),
        ({".gitignore": "*.pyc\n"}, False),
        ({".gitignore": "_restore/\n!_restore/u-1Z/\n!_restore/u-1Z.json\n"}, False),
        ({"_restore/.gitignore": "*\n"}, True),
        ({".git/info/exclude": "_restore/\n"}, True),
        ({".git/info/exclude": "_restore/\n", ".gitignore": "!_restore/**\n"}, False),
        ({}, False),
    ],
)
def test_gitignore_covers(tmp_path: Path, files: dict[str, str], covered: bool) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    got = gitignore_covers(tmp_path, "_restore/u-1Z/x") and gitignore_covers(tmp_path, "_restore/u-1Z.json")
    assert got is covered


# ---------------------------------------------------------------------- diff
def test_structural_changes_name_paths() -> None:
    live = {"quality": 90, "formats": ["png", "webp"], "nested": {"a": 1}}
    restored = {"quality": 85, "formats": ["png"], "nested": {"a": 1, "b": 2}, "debug": False}
    assert structural_changes(live, restored) == [
        "+ root['debug']: false",
        "- root['formats'][1]: \"webp\"",
        "+ root['nested']['b']: 2",
        "~ root['quality']: 90 -> 85",
    ]


def test_a_yaml_alias_bomb_gets_a_text_diff_at_once(tmp_path: Path) -> None:
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]  # 10**9 leaves
    (tmp_path / "live.yaml").write_text("a0: 1\n")
    (tmp_path / "rest.yaml").write_text("\n".join(levels) + "\n")
    started = time.monotonic()
    d = diff_file("cfg.yaml", tmp_path / "live.yaml", tmp_path / "rest.yaml", "at-X", full=False)
    assert time.monotonic() - started < 5
    assert d.kind == "text" and "YAML aliases" in (d.note or "")
    recursive = tmp_path / "loop.yaml"
    recursive.write_text("a: &x [*x]\n")
    d = diff_file("loop.yaml", tmp_path / "live.yaml", recursive, "at-X", full=False)
    assert d.kind == "text"


def test_diff_kinds_and_the_cap(tmp_path: Path) -> None:
    def pair(name: str, live: bytes, restored: bytes) -> tuple[Path, Path]:
        (tmp_path / "live").mkdir(exist_ok=True)
        (tmp_path / "rest").mkdir(exist_ok=True)
        (tmp_path / "live" / name).write_bytes(live)
        (tmp_path / "rest" / name).write_bytes(restored)
        return tmp_path / "live" / name, tmp_path / "rest" / name

    long_live = "".join(f"line {i}\n" for i in range(200)).encode()
    long_rest = "".join(f"LINE {i}\n" for i in range(200)).encode()
    capped = diff_file("t.txt", *pair("t.txt", long_live, long_rest), "at-X", full=False)
    assert capped.kind == "text" and len(capped.lines) == DIFF_LINE_CAP and capped.truncated > 0
    whole = diff_file("t.txt", *pair("t.txt", long_live, long_rest), "at-X", full=True)
    assert whole.truncated == 0 and whole.lines[0] == "--- live/t.txt" and whole.lines[1] == "+++ at-X/t.txt"

    y = diff_file("s.yaml", *pair("s.yaml", b"a: 1\nb: [1, 2]\n", b"a: 2\nb: [1, 2]\n"), "at-X", False)
    assert (y.kind, y.format, y.lines) == ("structured", "yaml", ["~ root['a']: 1 -> 2"])
    n = diff_file("d.ndjson", *pair("d.ndjson", b'{"n":1}\n{"n":2}\n', b'{"n":1}\n'), "at-X", False)
    assert n.kind == "structured" and n.lines == ['- root[1]: {"n": 2}']
    fmt = diff_file("f.json", *pair("f.json", b'{"a": 1}', b'{\n  "a": 1\n}\n'), "at-X", False)
    assert fmt.lines == ["(same data, different formatting)"]
    broken = diff_file("b.json", *pair("b.json", b'{"a": 1', b'{"a": 2}'), "at-X", False)
    assert broken.kind == "text" and "not valid JSON" in (broken.note or "")
    eol = diff_file("e.txt", *pair("e.txt", b"a\nb\n", b"a\r\nb"), "at-X", False)
    assert eol.kind == "text" and eol.lines == ["(differs only in line endings or the final newline)"]
    binary = diff_file("m.bin", *pair("m.bin", b"\x00\x01", b"\x00\x02\x03"), "at-X", False)
    assert binary.kind == "binary" and binary.live == {"size": 2, "sha256": hashlib.sha256(b"\x00\x01").hexdigest()}
    assert binary.restored and binary.restored["size"] == 3


# ---------------------------------------------------------------------- the operation with a stand-in S3
class FakeS3:
    """What `restore_at` uses of S3, from a list of entries; records every GET."""

    def __init__(self, entries: list[ObjectVersion], blobs: dict[str, bytes]) -> None:
        self.entries = entries
        self.blobs = blobs
        self.gets: list[str] = []

    def versioning(self, bucket: str) -> str:
        return "Enabled"

    def iter_versions(self, bucket: str, prefix: str, skip: tuple[str, ...] = ()) -> Iterator[ObjectVersion]:
        return iter([e for e in self.entries if e.key.startswith(prefix)])

    def list_prefixes(self, bucket: str, prefix: str) -> tuple[list[str], list[ObjectVersion]]:
        return sorted({prefix + e.key[len(prefix) :].split("/")[0] + "/" for e in self.entries}), []

    def download_version(self, bucket: str, obj: ObjectVersion, dest: Path) -> str:
        self.gets.append(obj.key)
        data = self.blobs[obj.version_id or ""]
        dest.write_bytes(data)
        return hashlib.sha256(data).hexdigest()


def test_unsafe_keys_and_markers_are_skipped_and_the_rest_restored(cfg: Any) -> None:
    p = "repo/state/skills/u/"
    keys = {
        "ok.txt": b"ok",
        "nul\x00.txt": b"nul",
        "x": b"file that is also a dir",
        "x/y.txt": b"under x",
        "/abs": b"absolute",
        "a/../../b": b"dots",
    }
    entries = [v(p + k, f"v{i}", T - timedelta(seconds=1), data=d) for i, (k, d) in enumerate(sorted(keys.items()))]
    entries.append(v(p + "dir/", "marker", T - timedelta(seconds=1), data=b""))
    entries.sort(key=lambda e: e.key)
    s3 = FakeS3(entries, {e.version_id or "": keys.get(e.key[len(p) :], b"") for e in entries})
    result = restore_at(cfg, T, unit="u", s3=s3)  # type: ignore[arg-type]
    assert not result.ok
    assert {r.key[len(p) :] for r in result.refused} == {"nul\x00.txt", "x", "/abs", "a/../../b"}
    assert sorted(s3.gets) == [p + "ok.txt", p + "x/y.txt"]  # nothing refused was even fetched
    assert result.directory_markers == [p + "dir/"]
    hold = Path(result.holding_path)
    assert sorted(q.relative_to(hold).as_posix() for q in hold.rglob("*") if q.is_file()) == ["ok.txt", "x/y.txt"]
    receipt = json.loads((cfg.restore_path / f"{hold.name}.json").read_text())
    assert receipt["counts"]["refused"] == 4 and receipt["counts"]["restored"] == 2


def test_nothing_written_when_refused_early(cfg: Any) -> None:
    s3 = FakeS3([v("repo/state/skills/u/a", "1", T + timedelta(days=1))], {"1": b"a"})
    with pytest.raises(DrError, match="had no objects at 2026-04-15T18:00:00Z"):
        restore_at(cfg, T, unit="u", s3=s3)  # type: ignore[arg-type]
    assert not cfg.restore_path.exists()  # not even an empty restore dir


def test_a_name_is_written_only_once_nothing_can_be_below_it(cfg: Any) -> None:
    p = "repo/state/skills/u/"
    scope = resolve_scope(cfg, "u", None, False)
    before = T - timedelta(seconds=1)
    names = ["a", "a-b", "a.txt", "a/c", "b", "d", "d/e", "d/e/f", "g", "h", "h/i", "z"]
    entries = [v(p + n, n, before, dm=n == "h/i") for n in names]  # h/i: deleted at TS, h stays a file
    emitted: list[str] = []
    seen_when: dict[str, list[str]] = {}

    def listing() -> Iterator[ObjectVersion]:
        for e in entries:
            seen_when[e.key[len(p) :]] = list(emitted)
            yield e

    d = Decisions(cfg, scope, T)
    d.decide(listing(), lambda item: emitted.append(item[0]))
    assert emitted == ["a-b", "a.txt", "a/c", "b", "d/e/f", "g", "h", "z"]
    assert sorted(r.key[len(p) :] for r in d.refused) == ["a", "d", "d/e"]
    assert all("both a file and a directory" in r.reason for r in d.refused)
    assert d.emitted == len(emitted)
    # streamed: out while the listing goes on (a key is decided when the next one is read)
    assert seen_when["d"] == [] and "a/c" in seen_when["d/e"] and "b" in seen_when["d/e/f"]


def test_a_listing_that_fails_half_way_fails_the_stream(cfg: Any) -> None:
    p = "repo/state/skills/u/"
    scope = resolve_scope(cfg, "u", None, False)

    def listing() -> Iterator[ObjectVersion]:
        yield v(p + "a", "1", T - timedelta(seconds=1))
        yield v(p + "b", "1", T - timedelta(seconds=1))
        yield v(p + "c", "1", T - timedelta(seconds=1))
        raise S3Error("ListObjectVersions", "bkt", None, "SlowDown after 8 tries")

    got: list[str] = []
    with pytest.raises(S3Error, match="SlowDown"):
        for name, _ in Decisions(cfg, scope, T).stream(listing):
            got.append(name)
    # "a" went out once "b" was decided (when "c" was read); "b" waited for "c", which never was
    assert got == ["a"]


# ---------------------------------------------------------------------- CLI parsing
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["snappy", "2026-04-15T18:00:00Z"], {"unit": "snappy", "ts": "2026-04-15T18:00:00Z", "all_": False}),
        (["--unit=snappy", "--ts=2026-04-15T18:00:00Z"], {"unit": "snappy", "ts": "2026-04-15T18:00:00Z"}),
        (["--all", "2026-04-15T18:00:00Z"], {"unit": "", "ts": "2026-04-15T18:00:00Z", "all_": True}),
        (["2026-04-15T18:00:00Z", "--all"], {"unit": "2026-04-15T18:00:00Z", "ts": "", "all_": True}),
        (["--path", "state/notes/", "2026-04-15T18:00:00Z"], {"path": "state/notes/", "ts": "2026-04-15T18:00:00Z"}),
        (["--all", "--ts=2026-04-15T18:00:00Z", "--force", "--full", "--json"], {"force": True, "json_": True}),
    ],
)
def test_positional_unit_and_ts_with_the_scope_flags(argv: list[str], expected: dict[str, Any]) -> None:
    from invoke.parser import Parser

    from dr_tasks import dr

    parsed = Parser(contexts=dr.to_contexts()).parse_argv(["restore", *argv])
    kwargs = parsed[0].as_kwargs
    for k, val in expected.items():
        assert kwargs[k] == val, kwargs


def test_ts_is_still_required_for_a_unit() -> None:
    from invoke.exceptions import ParseError
    from invoke.parser import Parser

    from dr_tasks import dr

    with pytest.raises(ParseError, match="positional"):
        Parser(contexts=dr.to_contexts()).parse_argv(["restore", "snappy"])


# ---------------------------------------------------------------------- download checks
def _s3_with(responses: list[dict[str, Any]]) -> Any:
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from dr_tasks.config import Endpoint
    from dr_tasks.transport import S3

    s3 = S3(Endpoint("bkt", "http://127.0.0.1:9", "us-east-1", None, "k", "s"), 1)
    stub = Stubber(s3.client)
    for r in responses:
        body = r.pop("data")
        head = r.pop("head", None)
        stub.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentLength": len(body), **r},
            {"Bucket": "bkt", "Key": "k", "VersionId": "v1"},
        )
        if head is not None:  # the part-layout question a multipart ETag asks (transport/parts.py)
            stub.add_response("head_object", head, {"Bucket": "bkt", "Key": "k", "VersionId": "v1", "PartNumber": 1})
    stub.activate()
    return s3


def test_download_checks_size_and_md5_and_retries(tmp_path: Path) -> None:
    good = b"hello"
    obj = ObjectVersion("k", "v1", len(good), f'"{hashlib.md5(good).hexdigest()}"', T)
    s3 = _s3_with([{"data": b"hellO", "VersionId": "v1"}, {"data": good, "VersionId": "v1"}])
    assert s3.download_version("bkt", obj, tmp_path / "f") == hashlib.sha256(good).hexdigest()
    assert (tmp_path / "f").read_bytes() == good

    s3 = _s3_with([{"data": b"hell", "VersionId": "v1"} for _ in range(3)])
    with pytest.raises(S3Error, match="read 4 bytes, the listing says 5"):
        s3.download_version("bkt", obj, tmp_path / "f")

    s3 = _s3_with([{"data": good, "VersionId": "v2"}])
    with pytest.raises(S3Error, match="asked for version v1"):
        s3.download_version("bkt", obj, tmp_path / "f")

    # a multipart ETag is a hash of the bytes cut into its parts: one part of these bytes proves them
    one_part = ObjectVersion("k", "v1", len(good), f'"{hashlib.md5(hashlib.md5(good).digest()).hexdigest()}-1"', T)
    s3 = _s3_with([{"data": good, "VersionId": "v1"}])
    assert s3.download_version("bkt", one_part, tmp_path / "f") == hashlib.sha256(good).hexdigest()

    # ... and one no cut of them reproduces (the server does not tell its parts) is read again, then refused:
    # never accepted on its size
    multi = ObjectVersion("k", "v1", len(good), '"0123456789abcdef0123456789abcdef-2"', T)
    s3 = _s3_with([{"data": good, "VersionId": "v1", "head": {"ContentLength": len(good)}} for _ in range(3)])
    with pytest.raises(S3Error, match=r"do not hash to the multipart ETag .*\(3 tries\)"):
        s3.download_version("bkt", multi, tmp_path / "f")
