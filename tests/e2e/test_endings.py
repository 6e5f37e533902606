"""How operations end: bad index rows, an index that cannot take the row, signals, Invoke's dry mode, unprune.

Each test runs the real `inv` in a scratch host repo against moto and Ceph RGW.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import HostRepo, assert_clean_refusal

INDEX_KEY = "state/log/snapshots.ndjson"


def snapshot(repo: HostRepo, label: str) -> dict[str, Any]:
    r = repo.run("dr.snapshot", f"--label={label}", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def append_lines(repo: HostRepo, *lines: str) -> None:
    with open(repo.index_path, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


# ---------------------------------------------------------------------- item 9: bad rows
BAD_ROLLBACK = '{"v":1,"kind":"rollback","id":"x","ts":"2026-01-01T00:00:00Z","interrupted_safety_snapshots":5}'
BAD_SNAPSHOT = '{"v":1,"kind":"snapshot","id":["a","b"],"ts":"2026-01-01T00:00:00Z","label":"pre-rollback-good"}'


@pytest.mark.parametrize("bad", [BAD_ROLLBACK, BAD_SNAPSHOT], ids=["rollback-row", "snapshot-id-list"])
def test_a_row_with_wrong_types_is_a_reported_bad_line_for_every_reader(server, bucket, make_repo, bad):
    repo = make_repo(server, bucket)
    repo.seed()
    row = snapshot(repo, "good")
    append_lines(repo, bad)
    bad_line = len(repo.index_bytes().decode().splitlines())
    where = f"line {bad_line}:"

    plan = repo.run("dr.rollback", row["id"])
    assert_clean_refusal(plan, "not applied", where)
    for args in (["dr.list"], ["dr.show", row["id"]], ["dr.prune", "--keep-last=1"], ["dr.reindex"]):
        r = repo.run(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr)
        assert where in r.stderr, (args, r.stderr)
    for args in (["dr.freshness"], ["dr.verify"]):
        r = repo.run(*args)
        assert "Traceback" not in r.stderr + r.stdout and where in r.stdout + r.stderr, (args, r.stdout, r.stderr)

    r = repo.run("dr.rollback", row["id"], "--apply", "--confirm-label=good", "--json")
    assert r.returncode == 0, r.stderr
    assert where in r.stderr
    assert json.loads(r.stdout).get("interrupted_safety_snapshots", []) == []
    # The bad line stays as it was: the index is never rewritten.
    assert bad in repo.index_bytes().decode().splitlines()
