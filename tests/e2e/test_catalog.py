"""`dr.list` / `dr.show` after a prune, and the refusals around pruned snapshots."""

from __future__ import annotations

import json
import time

from tests.conftest import new_bucket


def test_pruned_snapshots_are_hidden_from_list_and_refused_by_rollback(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    old = json.loads(repo.run("dr.snapshot", "--label=old", "--json").stdout)
    time.sleep(1.0)
    new = json.loads(repo.run("dr.snapshot", "--label=new", "--json").stdout)
    r = repo.run("dr.prune", "--keep-last=1", "--apply")
    assert r.returncode == 0, r.stderr

    listed = json.loads(repo.run("dr.list", "--json").stdout)
    assert [s["id"] for s in listed["snapshots"]] == [new["id"]] and listed["pruned"] == [old["id"]]
    table = repo.run("dr.list")
    assert old["id"] not in table.stdout and "1 pruned snapshots not shown" in table.stdout
    everything = json.loads(repo.run("dr.list", "--all", "--json").stdout)
    assert [s["id"] for s in everything["snapshots"]] == [old["id"], new["id"]]
    assert repo.run("dr.show", old["id"]).returncode == 0  # history stays readable

    rb = repo.run("dr.rollback", old["id"], "--apply", "--confirm-label=old")
    assert rb.returncode == 1 and "was pruned" in rb.stderr and "Traceback" not in rb.stderr


def test_root_that_does_not_exist_is_a_config_error(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.write_config(root="/nonexistent/dr-tasks-root")
    r = repo.run("dr.snapshot", "--label=x")
    assert r.returncode == 1 and "config dr.root" in r.stderr and "Traceback" not in r.stderr


def test_a_unit_name_too_long_for_the_file_system_is_refused(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    r = repo.run("dr.restore", "u" * 10_000, "2026-04-15T18:00:00Z")
    assert r.returncode == 1 and "longer than 200 bytes" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr) < 1000


def test_list_shows_sizes_for_people_and_json_keeps_the_byte_count(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed({"state/skills/big/blob.bin": bytes(1536 * 1024), "state/skills/small/a.txt": b"x" * 100})
    snap = json.loads(repo.run("dr.snapshot", "--label=sized", "--json").stdout)
    assert snap["bytes"] == 1536 * 1024 + 100
    table = repo.run("dr.list")
    assert table.returncode == 0, table.stderr
    assert "1.5 MiB" in table.stdout and str(snap["bytes"]) not in table.stdout
    listed = json.loads(repo.run("dr.list", "--json").stdout)
    assert listed["snapshots"][0]["bytes"] == 1536 * 1024 + 100  # raw, for scripts
