"""The lease: one operation at a time, on a store that honours If-None-Match (moto) and one that does not (RGW).

Ceph RGW 16.2 ignores `If-None-Match: *` on versioned buckets, so there the
lease falls back to put-then-read-back (oldest version wins); the tests below
run every case on both servers and check which protocol each one got.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dr_tasks import DrError, LockHeld, hold_lease, read_lease
from dr_tasks.lease import LOCK_KEY, MODE_CONDITIONAL, MODE_READ_BACK
from dr_tasks.lease import model as lock_mod
from tests.conftest import assert_clean_refusal, bucket_state, live_objects, new_bucket
from tests.support.faultproxy import Rule


def lock_entries(server: Any, bucket: str) -> list[tuple[str, str, str, bool]]:
    return [e for e in bucket_state(server, bucket) if e[0] == LOCK_KEY]


def spawn(repo: Any, *args: str) -> subprocess.Popen[str]:
    """`inv <args>` in the repo, in the background, with the environment `repo.run` uses."""
    return repo.spawn(*args)


def plant_lease(server: Any, bucket: str, **fields: Any) -> str:
    """Write a lease object as another operator's run would have left it; returns its version id."""
    body = {
        "v": 1,
        "tool": "dr-tasks",
        "token": "ghost-token",
        "owner": "ghost",
        "host": "elsewhere",
        "pid": 4242,
        "operation": "rollback",
        "started": "2026-01-01T00:00:00Z",
        "ttl_seconds": 600,
        **fields,
    }
    r = server.client().put_object(Bucket=bucket, Key=LOCK_KEY, Body=json.dumps(body).encode())
    return r.get("VersionId", "null")


def this_machine(pid: int) -> dict[str, Any]:
    """The identity fields a lease body of `pid` on this machine carries, read straight from /proc."""

    def first_line(path: str) -> str | None:
        try:
            return Path(path).read_text().strip() or None
        except OSError:
            return None

    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return {
        "machine_id": first_line("/etc/machine-id") or first_line("/var/lib/dbus/machine-id"),
        "boot_id": first_line("/proc/sys/kernel/random/boot_id"),
        "pid_ns": os.readlink("/proc/self/ns/pid"),
        "pid_start": int(stat[stat.rfind(b")") + 2 :].split()[19]),
    }


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def expected_mode(server: Any) -> str:
    return MODE_READ_BACK if server.name == "rgw" else MODE_CONDITIONAL


# ---------------------------------------------------------------------- two operators
def test_two_concurrent_snapshots_exactly_one_wins(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    # Slow lease writes put both processes inside the acquisition at once (the
    # race itself), slow copies keep the winner holding while the loser looks.
    fault_proxy.add(Rule(op="PutObject", key="lock.json", fault=None, times=-1, delay=0.3))
    fault_proxy.add(Rule(op="CopyObject", fault=None, times=-1, delay=1.0))
    procs = [spawn(repo, "dr.snapshot", f"--label=op{i}", "--json") for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 1], (codes, outs)
    win, lose = (0, 1) if codes[0] == 0 else (1, 0)
    _, err = outs[lose]
    assert "Traceback" not in err
    holder = f"@{socket.gethostname()} pid {procs[win].pid} for snapshot since "
    assert "another dr operation is running: lease held by " in err and holder in err, err
    assert "(expires 20" in err
    rows = repo.index_rows()
    assert [r["label"] for r in rows] == [f"op{win}"]
    assert json.loads(outs[win][0])["id"] == rows[0]["id"]
    if server.name == "rgw":
        # RGW ignored If-None-Match: the run said how it decided instead.
        assert "falls back to put-then-read-back" in outs[win][1] + err
    assert lock_entries(server, bucket) == []


def race_once(cfg: Any, contenders: int = 5) -> dict[int, Any]:
    """Release `contenders` threads at once; the winner holds until every loser has given up."""
    start = threading.Barrier(contenders)
    losers_done = threading.Semaphore(0)
    results: dict[int, Any] = {}

    def contender(i: int) -> None:
        start.wait()
        try:
            with hold_lease(cfg, operation=f"t{i}") as lease:
                results[i] = lease
                for _ in range(contenders - 1):
                    assert losers_done.acquire(timeout=60)
        except LockHeld as err:
            results[i] = err
            losers_done.release()

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.mark.parametrize("versioned", [True, False])
def test_threads_racing_for_the_lease_never_both_hold_it(server, make_repo, versioned):
    """Mutual exclusion, straight through the API: 5 contenders released at once, 2 rounds."""
    bucket = new_bucket(server, versioned=versioned)
    cfg = make_repo(server, bucket).cfg()
    for _ in range(2):
        results = race_once(cfg)
        winners = [r for r in results.values() if not isinstance(r, Exception)]
        assert len(results) == 5 and len(winners) == 1, results
        winner = winners[0]
        assert winner.mode == (expected_mode(server) if versioned else MODE_CONDITIONAL)
        for err in (r for r in results.values() if isinstance(r, Exception)):
            assert f"for {winner.operation} since" in str(err)
        assert lock_entries(server, bucket) == []
        assert read_lease(cfg) is None


# ---------------------------------------------------------------------- stale and live leases
def test_stale_lease_is_taken_over_only_with_break_lock_and_logged(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    plant_lease(server, bucket, ttl_seconds=1)
    time.sleep(2.2)  # past LastModified + ttl on the server's clock
    before = (repo.index_bytes(), bucket_state(server, bucket))
    r = repo.run("dr.snapshot", "--label=after-crash")
    assert_clean_refusal(r, "is stale: held by ghost@elsewhere pid 4242 for rollback since 2026-01-01T00:00:00Z")
    assert "expired at" in r.stderr and "--break-lock" in r.stderr
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before

    r = repo.run("dr.snapshot", "--label=after-crash", "--break-lock", "--json")
    assert r.returncode == 0, r.stderr
    assert "warning: broke a stale lease held by ghost@elsewhere pid 4242 for rollback" in r.stderr
    rows = repo.index_rows()
    assert [row["kind"] for row in rows] == ["lock-break", "snapshot"]
    assert rows[0]["broken"]["owner"] == "ghost" and rows[0]["operation"] == "snapshot"
    assert rows[0]["reason"].startswith("it expired at")
    assert lock_entries(server, bucket) == []  # the ghost's version is gone too, no delete marker


def test_live_lease_is_never_broken(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    plant_lease(server, bucket)
    before = (repo.index_bytes(), bucket_state(server, bucket))
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(
        r, "another dr operation is running: lease held by ghost@elsewhere pid 4242 for rollback since 2026-01-01"
    )
    assert "(expires 20" in r.stderr
    r = repo.run("dr.snapshot", "--label=x", "--break-lock")
    assert_clean_refusal(r, "refusing --break-lock: the lease is live, held by ghost@elsewhere pid 4242")
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before


def test_a_dead_holder_on_this_machine_is_taken_over_without_a_flag_and_logged(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    pid = dead_pid()
    # Same machine, boot and pid namespace as the inv below; the pid is gone.
    ident = {**this_machine(os.getpid()), "pid_start": 12345}
    plant_lease(server, bucket, host=socket.gethostname(), pid=pid, operation="backup", **ident)
    r = repo.run("dr.snapshot", "--label=x", "--json")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    took = [line for line in r.stderr.splitlines() if "took over the lease" in line]
    assert len(took) == 1 and f"ghost@{socket.gethostname()} pid {pid} for backup" in took[0], r.stderr
    assert f"pid {pid} is not running on this machine" in took[0]
    rows = repo.index_rows()
    assert [row["kind"] for row in rows] == ["lock-break", "snapshot"]
    assert rows[0]["automatic"] is True and rows[0]["broken"]["pid"] == pid
    assert rows[0]["reason"].startswith(f"pid {pid} is not running")
    assert lock_entries(server, bucket) == []


def test_a_reused_pid_is_told_from_the_holder_by_its_start_time(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ident = this_machine(sleeper.pid)
        # The holder's own process, alive: held, and --break-lock is refused.
        plant_lease(server, bucket, host=socket.gethostname(), pid=sleeper.pid, **ident)
        before = (repo.index_bytes(), bucket_state(server, bucket))
        r = repo.run("dr.snapshot", "--label=x")
        assert_clean_refusal(r, f"another dr operation is running: lease held by ghost@{socket.gethostname()} pid")
        r = repo.run("dr.snapshot", "--label=x", "--break-lock")
        assert_clean_refusal(r, "refusing --break-lock: the lease is live")
        assert (repo.index_bytes(), bucket_state(server, bucket)) == before
        # The same pid, but the holder started at another time: that process has exited, the pid was reused.
        for _, vid, _, _ in lock_entries(server, bucket):
            server.client().delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=vid)
        plant_lease(
            server, bucket, host=socket.gethostname(), pid=sleeper.pid, **{**ident, "pid_start": ident["pid_start"] - 7}
        )
        r = repo.run("dr.snapshot", "--label=x")
        assert r.returncode == 0, r.stderr
        assert f"pid {sleeper.pid} on this machine" in r.stderr and "is another process now" in r.stderr
        assert [row["kind"] for row in repo.index_rows()] == ["lock-break", "snapshot"]
        assert lock_entries(server, bucket) == []
    finally:
        sleeper.kill()
        sleeper.wait()


OTHER_IDENTITIES = {
    # an older body, or a tool that records no identity: only the hostname matches
    "no identity": lambda me: {"machine_id": None, "boot_id": None, "pid_ns": None, "pid_start": None},
    # another machine (or container image) with the same hostname
    "other machine id": lambda me: {**me, "machine_id": "0" * 32},
    # the same machine rebooted, or another VM cloned with its machine id
    "other boot": lambda me: {**me, "boot_id": "00000000-0000-0000-0000-000000000000"},
    # another container on this kernel (host networking, same hostname)
    "other pid namespace": lambda me: {**me, "pid_ns": "pid:[1]"},
}


@pytest.mark.parametrize("other", list(OTHER_IDENTITIES))
def test_same_hostname_is_no_identity_a_live_lease_stays_held(server, bucket, make_repo, other):
    repo = make_repo(server, bucket)
    repo.seed()
    pid = dead_pid()  # not running HERE; in the holder's namespace or machine it may well be
    ident = OTHER_IDENTITIES[other](this_machine(os.getpid()))
    plant_lease(server, bucket, host=socket.gethostname(), pid=pid, operation="backup", **ident)
    before = (repo.index_bytes(), bucket_state(server, bucket))
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(
        r, f"another dr operation is running: lease held by ghost@{socket.gethostname()} pid {pid} for backup"
    )
    assert "stale" not in r.stderr
    r = repo.run("dr.snapshot", "--label=x", "--break-lock")
    assert_clean_refusal(r, "refusing --break-lock: the lease is live")
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before


def test_unreadable_lease_object_is_reported_not_ignored(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    moto_server.client().put_object(Bucket=bucket, Key=LOCK_KEY, Body=b"\x00garbage[/]")
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(r, "lease held by an unreadable lease object")


@pytest.mark.parametrize("versioned", [True, False])
def test_an_unreadable_lease_goes_stale_and_can_be_broken(moto_server, make_repo, monkeypatch, versioned):
    bucket = new_bucket(moto_server, versioned=versioned)
    repo = make_repo(moto_server, bucket)
    cfg = repo.cfg()
    moto_server.client().put_object(Bucket=bucket, Key=LOCK_KEY, Body=b"{not json")
    # an unreadable lease lives DEFAULT_TTL from its LastModified; shorten it for the test
    monkeypatch.setattr(lock_mod, "DEFAULT_TTL", 1.0)
    time.sleep(2.2)
    with pytest.raises(LockHeld, match="is stale: held by an unreadable lease object"), hold_lease(cfg):
        pass
    with hold_lease(cfg, operation="api", break_lock=True) as lease:
        assert lease.broke is not None and lease.broke.owner == "an unreadable lease object"
    assert lock_entries(moto_server, bucket) == []
    assert [r["kind"] for r in repo.index_rows()] == ["lock-break"]


# A host tasks.py that shortens the lifetime of a lease whose body names none (an unreadable
# one lives DEFAULT_TTL, 10 minutes): only that constant changes; everything else is the package.
SHORT_DEFAULT_TTL_TASKS = """\
import dr_tasks.lease.model as lock
from invoke import Collection
from dr_tasks import dr

lock.DEFAULT_TTL = 1.0
ns = Collection(dr)
"""

GARBLED_BODIES = {
    # valid JSON, but a string no UTF-8 encoder takes (printing or logging it raised)
    "lone surrogate": b'{"v":1,"token":"t\\ud800","owner":"\\ud800","host":"h\\udfff","pid":4242,"operation":"x"}',
    "invalid utf-8": b'{"v":1,"token":"t\xff\xfe","owner":"ann"}',
    "not an object": b'["token", "owner"]',
    "a bare string": b'"token"',
    "nested too deep": b"[" * 100_000,
}


@pytest.mark.parametrize("garble", list(GARBLED_BODIES))
def test_a_garbled_lease_body_is_an_unreadable_holder_broken_once_stale_and_logged(server, bucket, make_repo, garble):
    repo = make_repo(server, bucket)
    repo.seed()
    (repo.path / "tasks.py").write_text(SHORT_DEFAULT_TTL_TASKS)
    server.client().put_object(Bucket=bucket, Key=LOCK_KEY, Body=GARBLED_BODIES[garble])
    before = (repo.index_bytes(), bucket_state(server, bucket))
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(r, "held by an unreadable lease object")
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before
    time.sleep(2.2)  # past its LastModified + the (shortened) default ttl
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(r, "is stale: held by an unreadable lease object", "--break-lock")
    r = repo.run("dr.snapshot", "--label=x", "--break-lock")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "broke a stale lease held by an unreadable lease object" in r.stderr
    rows = repo.index_rows()
    assert [row["kind"] for row in rows] == ["lock-break", "snapshot"]
    assert rows[0]["broken"]["owner"] == "an unreadable lease object"
    assert lock_entries(server, bucket) == []


def test_a_garbage_pid_in_a_lease_body_is_no_pid(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    plant_lease(server, bucket, host=socket.gethostname(), pid=10**30, **this_machine(os.getpid()))
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(r, f"another dr operation is running: lease held by ghost@{socket.gethostname()} for")


# ---------------------------------------------------------------------- many renewals
def test_the_newest_renewal_counts_however_many_there_were(server, bucket, make_repo):
    """A holder that renewed far more often than any fixed number of versions read stays live."""
    repo = make_repo(server, bucket)
    repo.seed()
    for _ in range(60):  # each renewal of a run is one more version of the lease object
        plant_lease(server, bucket, ttl_seconds=2)
    time.sleep(2.5)  # every one of those expired...
    # ...but the holder renewed once more; 15 s leaves time for two runs on a loaded machine
    newest = plant_lease(server, bucket, ttl_seconds=15)
    before = (repo.index_bytes(), bucket_state(server, bucket))
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(r, "another dr operation is running: lease held by ghost@elsewhere pid 4242 for rollback")
    r = repo.run("dr.snapshot", "--label=x", "--break-lock")
    assert_clean_refusal(r, "refusing --break-lock: the lease is live")
    assert (repo.index_bytes(), bucket_state(server, bucket)) == before
    # Once the newest renewal expired, one break takes every version of the holder, logged once.
    modified = server.client().head_object(Bucket=bucket, Key=LOCK_KEY, VersionId=newest)["LastModified"]
    time.sleep(max(0.0, modified.timestamp() + 16.2 - time.time()))
    r = repo.run("dr.snapshot", "--label=x", "--break-lock")
    assert r.returncode == 0, r.stderr
    assert [row["kind"] for row in repo.index_rows()] == ["lock-break", "snapshot"]
    assert lock_entries(server, bucket) == []


def test_a_real_holder_renewing_past_fifty_versions_stays_live(server, bucket, make_repo):
    """The same through the renewer itself: a short ttl, more than 50 renewals, and the lease is still live."""
    repo = make_repo(server, bucket)
    repo.seed()
    cfg = repo.cfg()
    with hold_lease(cfg, operation="long", ttl=0.9) as lease:  # renewed every 0.3 s
        deadline = time.monotonic() + 90
        while len(lease.version_ids) < 60 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(lease.version_ids) >= 60
        # The next renewals carry a 20 s ttl, so the check below does not hang on
        # a loaded machine renewing within 0.9 s; the first 60 versions still expired.
        lease.ttl = 20
        renewed = len(lease.version_ids)
        while len(lease.version_ids) < renewed + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        holder = read_lease(cfg)
        assert holder is not None and holder.stale is None and holder.operation == "long", holder
        r = repo.run("dr.snapshot", "--label=x", "--break-lock")
        assert_clean_refusal(r, "refusing --break-lock: the lease is live")
    assert repo.index_bytes() == b""
    assert lock_entries(server, bucket) == []


# ---------------------------------------------------------------------- confirmation
def test_a_conditional_create_is_confirmed_by_reading_back(server, bucket, make_repo, fault_proxy):
    """A 412 on the probe says the key exists, not that our version is the lease: it is read back."""
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    # Our create lands and its answer is parked; meanwhile the store lets another writer's version
    # become the lease (as a store whose If-None-Match is not atomic does): ours is gone, theirs stands.
    fault_proxy.add(Rule(op="PutObject", key="lock.json", fault="hold-after", times=1))
    p = spawn(repo, "dr.snapshot", "--label=x")
    deadline = time.monotonic() + 60
    while fault_proxy.faults["PutObject:hold-after"] < 1 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    ours = [vid for _, vid, _, _ in lock_entries(server, bucket)]
    assert len(ours) == 1
    server.client().delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=ours[0])
    ghost = plant_lease(server, bucket)
    fault_proxy.release()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "Traceback" not in err, err
    assert "another dr operation is running: lease held by ghost@elsewhere pid 4242 for rollback" in err
    assert repo.index_bytes() == b""
    assert live_objects(server, bucket, "snapshots/") == {}
    assert [e[1] for e in lock_entries(server, bucket)] == [ghost]


# ---------------------------------------------------------------------- release
def test_lease_is_released_after_success_and_after_failure(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    assert repo.run("dr.snapshot", "--label=ok").returncode == 0
    assert lock_entries(server, bucket) == []
    fault_proxy.add(Rule(op="CopyObject", key="beta/blob.bin", fault=403, times=-1))
    r = repo.run("dr.snapshot", "--label=fails")
    assert_clean_refusal(r, "no index row was written")
    assert lock_entries(server, bucket) == []
    fault_proxy.clear()
    # the next operator finds the lease free: no --break-lock needed
    assert repo.run("dr.snapshot", "--label=next").returncode == 0
    assert [r["label"] for r in repo.index_rows()] == ["ok", "next"]
    assert lock_entries(server, bucket) == []


def test_unversioned_bucket_takes_and_releases_the_lease(server, make_repo):
    bucket = new_bucket(server, versioned=False)
    repo = make_repo(server, bucket)
    repo.seed()
    cfg = repo.cfg()
    with hold_lease(cfg, operation="check") as lease:
        # both servers honour If-None-Match on an unversioned bucket
        assert lease.mode == MODE_CONDITIONAL and not lease.versioned
        seen: list[BaseException] = []

        def other() -> None:
            try:
                with hold_lease(cfg, operation="other"):
                    pass
            except LockHeld as err:
                seen.append(err)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(seen) == 1
    assert lock_entries(server, bucket) == []


def test_nested_lease_in_one_thread_is_reentrant(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    cfg = make_repo(moto_server, bucket).cfg()
    with hold_lease(cfg, operation="rollback") as outer, hold_lease(cfg, operation="snapshot") as inner:
        assert inner is outer
    assert lock_entries(moto_server, bucket) == []


def test_renewal_keeps_a_long_operation_live_and_a_takeover_is_noticed(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    cfg = make_repo(moto_server, bucket).cfg()
    notes: list[tuple[str, str]] = []
    # A renewal every second; a loaded machine may renew a second late and still be live.
    with hold_lease(cfg, operation="long", ttl=3, notify=lambda lv, m: notes.append((lv, m))) as lease:
        time.sleep(4)  # longer than the ttl: only renewals keep it live
        holder = read_lease(cfg)
        assert holder is not None and holder.stale is None and holder.operation == "long"
        assert len(lease.version_ids) >= 2  # the first write plus at least one renewal
        # someone writes their lease and deletes ours: the renewer notices. (In that order, so
        # that at no moment is there no lease at all: the renewer would report "nobody".)
        c = moto_server.client()
        ghost_vid = plant_lease(moto_server, bucket)
        deadline = time.monotonic() + 5
        while not lease.lost and time.monotonic() < deadline:
            # Every version of ours, also a renewal that landed while we were at it.
            for _, vid, _, _ in lock_entries(moto_server, bucket):
                if vid != ghost_vid:
                    c.delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=vid)
            time.sleep(0.1)
        assert lease.lost
    assert any("was taken over while long ran: ghost@elsewhere" in m for _, m in notes), notes
    # our release left the other holder's lease alone
    assert [e[1] for e in lock_entries(moto_server, bucket)] == [ghost_vid]


# ---------------------------------------------------------------------- faults around the lease
def test_transient_faults_on_the_lease_are_retried(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    fault_proxy.add(Rule(op="PutObject", key="lock.json", fault=503, times=2))
    fault_proxy.add(Rule(op="ListObjectVersions", key="", fault="reset", times=1))
    fault_proxy.add(Rule(op="DeleteObjects", fault=500, times=1))
    r = repo.run("dr.snapshot", "--label=bumpy", "--json")
    assert r.returncode == 0, r.stderr
    assert fault_proxy.faults["PutObject:503"] == 2 and fault_proxy.faults["DeleteObjects:500"] == 1
    assert len(repo.index_rows()) == 1
    assert lock_entries(server, bucket) == []


def test_permanent_failure_taking_the_lease_changes_nothing(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    before = bucket_state(server, bucket)
    # the first lease write goes through, the probe fails for good: our version must not stay behind
    fault_proxy.add(Rule(op="PutObject", key="lock.json", fault=403, skip=1, times=-1))
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(r, f"PutObject s3://{bucket}/{LOCK_KEY} failed: AccessDenied")
    assert repo.index_bytes() == b""
    assert bucket_state(server, bucket) == before


def test_failed_release_is_a_warning_and_the_next_run_names_the_dead_holder(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    fault_proxy.add(Rule(op="DeleteObjects", fault=403, times=-1))
    r = repo.run("dr.snapshot", "--label=kept-lease")
    # the snapshot itself is done and recorded; the leftover lease is the operator's to know about
    assert r.returncode == 0, r.stderr
    assert "could not remove the lease" in r.stderr and "--break-lock" in r.stderr
    assert len(repo.index_rows()) == 1
    fault_proxy.clear()
    # Its holder has ended on this very machine: the next plain run takes it over, and logs it.
    r = repo.run("dr.snapshot", "--label=next")
    assert r.returncode == 0, r.stderr
    assert "took over the lease of" in r.stderr and "is not running on this machine" in r.stderr
    assert [row["kind"] for row in repo.index_rows()] == ["snapshot", "lock-break", "snapshot"]
    assert lock_entries(server, bucket) == []


def test_kill_9_mid_snapshot_leaves_a_lease_the_plain_rerun_takes_over(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    fault_proxy.add(Rule(op="CopyObject", fault=None, times=-1, delay=0.5))
    p = spawn(repo, "dr.snapshot", "--label=killed")
    deadline = time.monotonic() + 60
    while fault_proxy.counts["CopyObject"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert repo.index_bytes() == b""
    assert lock_entries(server, bucket) != []
    fault_proxy.clear()
    r = repo.run("dr.snapshot", "--label=again", "--json")
    assert r.returncode == 0, r.stderr
    took = [line for line in r.stderr.splitlines() if "took over the lease" in line]
    assert len(took) == 1 and f"pid {p.pid} is not running on this machine" in took[0], r.stderr
    assert [row["kind"] for row in repo.index_rows()] == ["lock-break", "snapshot"]
    snap = json.loads(r.stdout)
    assert snap["objects"] == len(files)
    assert lock_entries(server, bucket) == []


def test_lock_held_is_a_dr_error_for_python_callers(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    cfg = make_repo(moto_server, bucket).cfg()
    plant_lease(moto_server, bucket)
    with pytest.raises(DrError) as info, hold_lease(cfg, operation="api"):
        pass
    assert isinstance(info.value, LockHeld)
    assert info.value.holder.owner == "ghost" and info.value.holder.stale is None


def test_a_renewal_that_lands_after_a_break_does_not_bring_the_lease_back(server, bucket, make_repo, fault_proxy):
    """A renewal stalled on the way past the ttl; the stale lease is broken, used and released; then the
    renewal lands, the only version left, and would read as ours. The holder must count it as lost."""
    from dr_tasks import LeaseLost

    mine = make_repo(server, bucket, endpoint_url=fault_proxy.url).cfg()
    theirs = make_repo(server, bucket).cfg()  # straight to the server: not slowed
    notes: list[str] = []
    with hold_lease(mine, operation="slow", ttl=2, notify=lambda lv, m: notes.append(m)) as lease:
        taken = time.monotonic()
        first = [v for v in lease.version_ids if v not in (None, "null")]
        fault_proxy.add(Rule(op="PutObject", key=LOCK_KEY, fault=None, delay=6))  # every renewal stalls 6 s
        time.sleep(max(0.0, taken + 3 - time.monotonic()))  # expired: no renewal has landed for the ttl
        with hold_lease(theirs, operation="other", break_lock=True):
            pass  # broke ours, held it, released it
        fault_proxy.rules.clear()  # the stalled renewal goes on; later ones are not slowed
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            vid not in first for _, vid, _, _ in lock_entries(server, bucket)
        ):
            time.sleep(0.2)  # the stalled renewal landed: a version of ours nobody broke
        assert [e for e in lock_entries(server, bucket) if e[1] in first] == []  # the break removed our first
        with pytest.raises(LeaseLost, match="lease lost; nothing more written"):
            lease.ensure("nothing was written")
