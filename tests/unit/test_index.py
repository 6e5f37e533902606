from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from dr_tasks.index import Index


def test_append_writes_whole_lines_and_never_rewrites(tmp_path: Path):
    idx = Index(tmp_path / "log" / "snapshots.ndjson")
    idx.append({"kind": "snapshot", "id": "a", "ts": "2026-01-01T00:00:00Z", "label": "caf\u00e9"})
    first = idx.path.read_bytes()
    idx.append({"kind": "rollback", "id": "b", "ts": "2026-01-01T00:00:01Z"})
    data = idx.path.read_bytes()
    assert data.startswith(first) and data.endswith(b"\n")
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["v"] == 1 and rows[0]["label"] == "caf\u00e9"
    read = idx.read()
    assert not read.bad and not read.torn_tail and len(read.rows) == 2


def test_torn_and_garbled_lines_are_reported_by_number_and_good_rows_kept(tmp_path: Path):
    path = tmp_path / "i.ndjson"
    good = json.dumps({"v": 1, "kind": "snapshot", "id": "ok"})
    path.write_text(f"{good}\nnot json\n[1, 2]\n\n{good}\n" + '{"v": 1, "kind": "sn')
    read = Index(path).read()
    assert [r["id"] for r in read.rows] == ["ok", "ok"]
    assert [b.lineno for b in read.bad] == [2, 3, 6]
    assert read.torn_tail
    assert "line 6" in read.bad[-1].describe()


def test_a_torn_tail_that_parses_is_still_reported(tmp_path: Path):
    path = tmp_path / "i.ndjson"
    path.write_text('{"v": 1, "kind": "snapshot", "id": "x"}')
    read = Index(path).read()
    assert read.torn_tail and read.bad and read.bad[0].lineno == 1


def test_append_after_a_torn_tail_keeps_it_and_starts_a_new_line(tmp_path: Path):
    path = tmp_path / "i.ndjson"
    path.write_text('{"v": 1, "kind": "sn')
    Index(path).append({"kind": "snapshot", "id": "new"})
    lines = path.read_text().split("\n")
    assert lines[0] == '{"v": 1, "kind": "sn'
    assert json.loads(lines[1])["id"] == "new"


def test_concurrent_appends_never_interleave(tmp_path: Path):
    idx = Index(tmp_path / "i.ndjson")

    def writer(n: int) -> None:
        for i in range(50):
            idx.append({"kind": "snapshot", "id": f"{n}-{i}", "pad": "x" * 500})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read = idx.read()
    assert not read.bad and len(read.rows) == 200


def test_missing_index_reads_empty(tmp_path: Path):
    read = Index(tmp_path / "nope.ndjson").read()
    assert read.rows == [] and read.bad == []
    assert not os.path.exists(tmp_path / "nope.ndjson")


def test_a_known_kind_with_wrong_field_types_is_a_bad_line_and_the_rest_are_kept(tmp_path):
    from dr_tasks.index import Index

    p = tmp_path / "i.ndjson"
    p.write_text(
        '{"v":1,"kind":"snapshot","id":"2026-01-01T00:00:00Z-a","ts":"2026-01-01T00:00:00Z","objects":1}\n'
        '{"v":1,"kind":"rollback","id":"x","ts":"2026-01-01T00:00:00Z","interrupted_safety_snapshots":5}\n'
        '{"v":1,"kind":"snapshot","id":["a"],"ts":"2026-01-01T00:00:00Z"}\n'
        '{"v":1,"kind":"prune","id":"p","ts":"2026-01-01T00:00:00Z","deleted":[1]}\n'
        '{"v":1,"kind":"pin","ts":"2026-01-01T00:00:00Z","pinned":true}\n'
        '{"v":1,"kind":"from-a-newer-tool","id":7}\n'
    )
    read = Index(p).read()
    assert [r["kind"] for r in read.rows] == ["snapshot", "from-a-newer-tool"]
    assert [b.lineno for b in read.bad] == [2, 3, 4, 5]
    assert "'interrupted_safety_snapshots' is int, not a list of strings" in read.bad[0].reason
    assert "'id' is list, not a string" in read.bad[1].reason
    assert "without 'id'" in read.bad[3].reason
    assert read.bad_summary() is not None and "line 2:" in read.bad_summary()
