"""The README's exit-code table, one test per row, every task run to that code.

0 done (or nothing to do; a dry run), 1 refused or failed (a plan that would
change something and was not applied among them), 130 / 143 interrupted by
SIGINT / SIGTERM, 141 stdout closed by its reader.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from dr_tasks import take_snapshot
from tests.conftest import (
    INV,
    HostRepo,
    Server,
    assert_clean_refusal,
    bucket_state,
    live_objects,
    new_bucket,
)

DR = str(Path(sys.executable).with_name("dr"))


def now_ts() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_backup(repo: HostRepo, backup: Server) -> str:
    dest = new_bucket(backup)
    repo.write_config(
        backup={
            "bucket": dest,
            "endpoint_url": backup.endpoint,
            "region": "eu-west-1",
            "access_key_id": backup.access_key,
            "secret_access_key": backup.secret_key,
        }
    )
    return dest


def every_task(snap_id: str, ts: str) -> dict[str, list[str]]:
    """One command line per task (drill aside: it needs no repo), each a run that gets as far as its pre hook."""
    return {
        "snapshot": ["dr.snapshot", "--label=x"],
        "list": ["dr.list"],
        "show": ["dr.show", snap_id],
        "restore": ["dr.restore", "alpha", ts],
        "rollback": ["dr.rollback", snap_id, "--apply", "--confirm-label=good"],
        "backup": ["dr.backup"],
        "freshness": ["dr.freshness"],
        "versioning": ["dr.versioning"],
        "verify": ["dr.verify"],
        "reindex": ["dr.reindex", "--apply"],
        "prune": ["dr.prune", "--keep-last=1", "--apply"],
        "pin": ["dr.pin", snap_id],
        "unprune": ["dr.unprune", snap_id, "--apply"],
        "recover": ["dr.recover", "--apply"],
    }


# ---------------------------------------------------------------------- 0: done, nothing to do, a dry run
def test_rollback_plan_when_live_already_equals_the_snapshot_exits_0_with_nothing_to_change(server, make_repo):
    repo = make_repo(server, new_bucket(server))
    repo.seed()
    snap = json.loads(repo.run("dr.snapshot", "--label=good", "--json").stdout)
    before, index_before = bucket_state(server, repo.bucket), repo.index_bytes()

    r = repo.run("dr.rollback", snap["id"])
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"nothing to change: live already equals snapshot {snap['id']}" in r.stdout
    assert "to apply it" not in r.stdout + r.stderr and "--apply" not in r.stdout + r.stderr
    assert json.loads(repo.run("dr.rollback", snap["id"], "--json").stdout)["counts"]["copy"] == 0
    assert bucket_state(server, repo.bucket) == before and repo.index_bytes() == index_before

    # with something to change the plan is still a refusal, on purpose
    server.client().put_object(Bucket=repo.bucket, Key="state/skills/alpha/a.txt", Body=b"changed")
    r = repo.run("dr.rollback", snap["id"])
    assert_clean_refusal(r, "not applied: that was the plan (1 to copy back", "to apply it, run: inv dr.rollback")


def test_backup_mirror_without_apply_copies_when_it_deletes_nothing_and_refuses_when_it_would(server, make_repo, moto2):
    repo = make_repo(server, new_bucket(server))
    repo.seed()
    dest = with_backup(repo, moto2)

    first = repo.run("dr.backup", "--mirror", "--json")
    assert first.returncode == 0, (first.stdout, first.stderr)
    result = json.loads(first.stdout)
    assert result["copied"] > 0 and result["deleted"] == 0 and not result["partial"]
    assert "state/notes/readme.txt" in live_objects(moto2, dest)

    server.client().delete_object(Bucket=repo.bucket, Key="state/notes/readme.txt")
    server.client().put_object(Bucket=repo.bucket, Key="state/notes/new.txt", Body=b"new")
    before, index_before = bucket_state(moto2, dest), repo.index_bytes()
    r = repo.run("dr.backup", "--mirror")
    assert_clean_refusal(
        r,
        f"delete s3://{dest}/state/notes/readme.txt",  # the plan: what would be deleted
        "refusing without --apply; nothing was copied or deleted",
        "to apply it, run: inv dr.backup --mirror --apply",
    )
    assert bucket_state(moto2, dest) == before and repo.index_bytes() == index_before


def test_every_task_exits_0_when_done_or_with_nothing_to_do(moto_server, make_repo, moto2):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    with_backup(repo, moto2)
    runs: list[tuple[str, list[str]]] = [
        ("snapshot", ["dr.snapshot", "--label=good", "--json"]),
        ("list", ["dr.list"]),
        ("rollback plan, nothing to change", ["dr.rollback", "{id}"]),
        ("rollback", ["dr.rollback", "{id}", "--apply", "--confirm-label=good"]),
        ("show", ["dr.show", "{id}"]),
        ("restore", ["dr.restore", "alpha", "{ts}"]),
        ("backup", ["dr.backup"]),
        ("backup --mirror, nothing to delete", ["dr.backup", "--mirror"]),
        ("backup not due", ["dr.backup", "--if-older-than=1d"]),
        ("versioning --enable", ["dr.versioning", "--enable"]),
        ("versioning", ["dr.versioning"]),
        ("freshness", ["dr.freshness"]),
        ("verify", ["dr.verify"]),
        ("reindex dry run", ["dr.reindex"]),
        ("reindex", ["dr.reindex", "--apply"]),
        ("pin", ["dr.pin", "{id}"]),
        ("unpin", ["dr.pin", "{id}", "--unpin"]),
        ("prune dry run", ["dr.prune", "--keep-last=1"]),
        ("prune", ["dr.prune", "--keep-last=1", "--apply"]),
        ("unprune dry run", ["dr.unprune", "{id}"]),
        ("recover dry run", ["dr.recover"]),
        ("recover", ["dr.recover", "--apply"]),
    ]
    ids: dict[str, str] = {}
    for what, args in runs:
        if what == "restore":
            time.sleep(1.1)  # a TS after the snapshot's writes
        argv = [a.format(id=ids.get("id", ""), ts=now_ts()) for a in args]
        r = repo.run(*argv)
        assert r.returncode == 0, (what, r.stdout, r.stderr)
        assert "Traceback" not in r.stdout + r.stderr, what
        if what == "snapshot":
            ids["id"] = json.loads(r.stdout)["id"]
            time.sleep(1.1)  # the rollback's safety snapshot gets another second
        if what == "prune":
            # the first snapshot was pruned (the rollback's safety snapshot is newer): unprune can look at it
            assert ids["id"] in r.stdout


# ---------------------------------------------------------------------- 1: refused or failed
def test_every_task_exits_1_on_a_refusal_naming_it_and_changing_nothing(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    snap = take_snapshot(repo.cfg(), "good")
    before, index_before = bucket_state(moto_server, repo.bucket), repo.index_bytes()
    repo.write_config(backup={"bucket": "cold-bucket", "endpoint_url": moto_server.endpoint})
    for task, args in every_task(snap.id, now_ts()).items():
        r = repo.run(*args, env={"INVOKE_DR_ROOT": "/nonexistent/dr-tasks-root"})
        assert_clean_refusal(r, f"dr.{task}: config dr.root", "fix:")
    # Invoke's own usage errors (an unknown flag or task, a missing argument) are 1 as well
    for args in (["dr.snapshot", "--bogus"], ["dr.rollback"], ["dr.nosuchtask"], ["dr.drill", "--bogus"]):
        r = repo.run(*args)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert bucket_state(moto_server, repo.bucket) == before and repo.index_bytes() == index_before


# ---------------------------------------------------------------------- 130 / 143: interrupted
HOOK = """\
import os
import pathlib
import time


def wait(c, result):
    pathlib.Path(f"in-hook-{os.getpid()}").write_text("waiting")
    time.sleep(120)
"""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_every_task_interrupted_exits_128_plus_the_signal(moto_server, make_repo, signum, code):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    snap = take_snapshot(repo.cfg(), "good")
    (repo.path / "slowhook.py").write_text(HOOK)
    tasks = {k: v for k, v in every_task(snap.id, now_ts()).items() if k not in ("list", "show")}  # they run no hooks
    repo.write_config(
        backup={"bucket": "cold-bucket", "endpoint_url": moto_server.endpoint},
        hooks={f"pre_{task}": ["slowhook:wait"] for task in tasks},
    )
    before, index_before = bucket_state(moto_server, repo.bucket), repo.index_bytes()
    procs = {task: repo.spawn(*args) for task, args in tasks.items()}
    try:
        deadline = time.monotonic() + 120
        for task, proc in procs.items():
            marker = repo.path / f"in-hook-{proc.pid}"
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), (task, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        for proc in procs.values():
            proc.send_signal(signum)
        for task, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == code, (task, out, err)
            assert f"dr.{task}: interrupted by {signal.Signals(signum).name}" in err and "Traceback" not in err
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    assert bucket_state(moto_server, repo.bucket) == before and repo.index_bytes() == index_before


# ---------------------------------------------------------------------- 141: stdout closed by its reader
def run_into_closed_pipe(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`argv | true`, deterministically: the pipe's reader is gone before the program writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(argv, cwd=cwd, env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=180)
    finally:
        os.close(write)


def test_output_into_a_closed_pipe_exits_141_quietly_after_the_task_did_its_work(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    env = repo.environ()
    for argv in ([DR, "--list"], [INV, "--list"], [INV, "--help", "dr.snapshot"], [DR, "--version"], [DR, "--help"]):
        r = run_into_closed_pipe(argv, repo.path, env)
        assert r.returncode == 141, (argv, r.stderr)
        assert r.stderr == "", (argv, r.stderr)

    # a task: its work is done (the snapshot and its row), only its output is dropped
    r = run_into_closed_pipe([INV, "dr.snapshot", "--label=piped"], repo.path, env)
    assert r.returncode == 141 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    rows: list[dict[str, Any]] = repo.index_rows()
    assert [row["label"] for row in rows if row["kind"] == "snapshot"] == ["piped"]
    for argv in ([INV, "dr.list"], [INV, "dr.list", "--json"], [DR, "show", rows[0]["id"]]):
        r = run_into_closed_pipe(argv, repo.path, env)
        assert r.returncode == 141 and r.stderr == "", (argv, r.stderr)
    # a refusal keeps its own code: the message is on stderr
    r = run_into_closed_pipe([INV, "dr.rollback", "2020-01-01T00:00:00Z-nope"], repo.path, env)
    assert r.returncode == 1 and "unknown snapshot id" in r.stderr
