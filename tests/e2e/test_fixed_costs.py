"""The fixed cost of a run: lazy imports, one data loader per process, and a lease only where a run writes.

A no-change `inv dr.backup` is mostly fixed cost (start-up, clients, the
lease), so these pin what keeps it small without giving up any guarantee: the
package imports no operation and no boto3 until a task needs one; a backup
with nothing to write checks the lease but does not take it (still refused,
with the same message, while someone holds it); and where the lease falls
back to read-back (RGW), the operation's read-only planning runs inside the
settle wait instead of after it, with the lease confirmed before the first write.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from dr_tasks import LockHeld, hold_lease, internals, take_snapshot
from dr_tasks.config import Endpoint
from dr_tasks.errors import DrError
from dr_tasks.lease import LOCK_KEY, MODE_CONDITIONAL, MODE_READ_BACK
from dr_tasks.lease import client as lock_mod
from dr_tasks.transport import S3, count_requests
from tests.conftest import Server, assert_clean_refusal, bucket_state, new_bucket
from tests.e2e.test_backup import backup_json, backup_rows, configure_backup, seeded


def lock_entries(server: Server, bucket: str) -> list[Any]:
    return [e for e in bucket_state(server, bucket) if e[0] == LOCK_KEY]


# ---------------------------------------------------------------------- imports
def test_the_package_and_the_task_list_load_without_boto3_or_the_operations(make_repo, moto_server):
    """`from dr_tasks import dr` (every host's tasks.py) and `inv --list` pull in no operation and no boto3."""
    code = textwrap.dedent(
        """
        import sys
        import dr_tasks
        from dr_tasks import dr
        from invoke.main import program
        sys.argv = ["inv", "--list"]
        try:
            program.run()
        except SystemExit:
            pass
        heavy = sorted(m for m in sys.modules if m.startswith(("boto3", "botocore", "dr_tasks.ops")))
        print("HEAVY", heavy)
        from dr_tasks import *  # every name in __all__ resolves
        missing = [n for n in dr_tasks.__all__ if n not in dir(dr_tasks)]
        print("MISSING", missing)
        """
    )
    repo = make_repo(moto_server, new_bucket(moto_server))
    r = subprocess.run([sys.executable, "-c", code], cwd=repo.path, env=repo.environ(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "dr.backup" in r.stdout and "HEAVY []" in r.stdout and "MISSING []" in r.stdout, r.stdout


def test_unknown_package_attribute_is_an_attribute_error():
    import dr_tasks

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dr_tasks.nope  # noqa: B018


# ---------------------------------------------------------------------- S3 clients
def test_clients_share_one_loader_but_not_credentials(moto_server, moto2):
    a = S3(Endpoint("x", moto_server.endpoint, "us-east-1", None, moto_server.access_key, moto_server.secret_key))
    b = S3(Endpoint("y", moto2.endpoint, "eu-west-1", None, moto2.access_key, moto2.secret_key))
    # one loader per process, each data dir on its search path once however many clients
    paths = internals.shared_model_loader().search_paths
    assert len(paths) == len(set(paths))
    assert a.credentials().access_key == moto_server.access_key
    assert b.credentials().access_key == moto2.access_key
    assert (a.client.meta.region_name, b.client.meta.region_name) == ("us-east-1", "eu-west-1")


def test_listing_timestamps_parse_as_botocore_parses_them():
    from botocore.utils import parse_timestamp

    parse = internals.timestamp_parser()
    for value in (
        "2026-11-25T01:51:10.123Z",
        "2026-11-25T01:51:10Z",
        "2026-11-25T01:51:10.123456789Z",
        "2024-02-29T23:59:59.9Z",
        "Wed, 25 Nov 2026 01:51:10 GMT",
        "2026-11-25T01:51:10+02:00",
        1764035470,
    ):
        assert parse(value) == parse_timestamp(value), value
    assert parse("2026-11-25T01:51:10.5Z").utcoffset().total_seconds() == 0


def test_a_listing_page_is_parsed_once_and_botocore_sees_only_its_markers(server, monkeypatch):
    """Our parse takes the entries; botocore's own checks and parser get a page of a few hundred bytes."""
    bucket = new_bucket(server)
    c = server.client()
    for i in range(120):
        c.put_object(Bucket=bucket, Key=f"k/{i:03d}", Body=b"x")
    seen: list[int] = []

    def after_ours(response_dict: dict[str, Any], **_: Any) -> None:
        seen.append(len(response_dict.get("body") or b""))

    s3 = S3(Endpoint(bucket, server.endpoint, "us-east-1", None, server.access_key, server.secret_key))
    s3.client.meta.events.register_last("before-parse.s3.ListObjectVersions", after_ours)
    s3.client.meta.events.register_last("before-parse.s3.ListObjectsV2", after_ours)
    versions = list(s3.iter_versions(bucket, "k/", page_size=50))
    objects = list(s3.iter_objects(bucket, "k/"))
    assert len(versions) == 120 and len(objects) == 120
    assert len(seen) == 4 and max(seen) < 1500, seen  # 3 version pages + 1 object page, markers only


def test_the_first_client_does_not_scan_every_service_directory(monkeypatch):
    """botocore's loader lists and stats ~400 service dirs before its first model; ours asks about S3 only."""
    import botocore.loaders

    calls: list[str] = []
    real = botocore.loaders.Loader.list_available_services

    def spy(self: Any, type_name: str) -> Any:
        calls.append(type_name)
        return real(self, type_name)

    monkeypatch.setattr(botocore.loaders.Loader, "list_available_services", spy)
    monkeypatch.setattr(internals.boto, "_loader", None)
    s3 = S3(Endpoint("b", "http://127.0.0.1:9", "us-east-1", None, "a", "b"))
    assert s3.client.meta.service_model.service_name == "s3"
    assert calls == []
    loader = internals.shared_model_loader()
    assert "s3" in loader.list_available_services("service-2")
    assert "nosuchservice" not in loader.list_available_services("service-2")
    assert "sts" in list(loader.list_available_services("service-2"))  # the whole list, when read


def test_a_no_change_json_backup_loads_neither_rich_nor_boto3(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    configure_backup(repo, moto2)
    seeded(repo)
    assert backup_json(repo)["copied"] > 0
    code = textwrap.dedent(
        """
        import sys
        from invoke.main import program
        try:
            program.run(["inv", "dr.backup", "--json"])
        except SystemExit as e:
            assert not e.code, e.code
        print("LOADED", sorted(m for m in ("rich", "boto3", "s3transfer", "jsonlines") if m in sys.modules))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=repo.path, env=repo.environ(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '"copied": 0' in r.stdout and "LOADED []" in r.stdout, r.stdout


def test_a_missing_profile_is_still_named(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(DrError, match="credentials profile 'nosuch' was not found"):
        S3(Endpoint("b", "http://127.0.0.1:9", None, "nosuch"))


# ---------------------------------------------------------------------- no-change backup
def test_no_change_backup_checks_the_lease_but_takes_none(server, bucket, make_repo, fault_proxy, moto2):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    seeded(repo)
    configure_backup(repo, moto2)
    first = backup_json(repo)
    assert first["copied"] > 0

    fault_proxy.clear()
    r = repo.run("dr.backup", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["copied"] == 0
    # one look at the lease object (a HEAD: it is free), no write of it: no PUT, no delete
    assert fault_proxy.counts["HeadObject"] == 1, fault_proxy.counts
    assert set(fault_proxy.counts) == {"ListObjectsV2", "HeadObject"}, fault_proxy.counts
    assert "put-then-read-back" not in r.stderr  # RGW: no lease taken, so nothing to fall back on
    assert lock_entries(server, bucket) == [] and len(backup_rows(repo)) == 2


def test_no_change_backup_is_refused_while_the_lease_is_held(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    backup_json(repo)
    before = (repo.index_bytes(), bucket_state(moto2, dest))
    with hold_lease(repo.cfg(), operation="rollback"):
        r = repo.run("dr.backup")
    assert_clean_refusal(r, "another dr operation is running: lease held by", "for rollback since")
    assert (repo.index_bytes(), bucket_state(moto2, dest)) == before


def test_changed_backup_takes_the_lease_and_plans_under_it(server, bucket, make_repo, fault_proxy, moto2):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    backup_json(repo)
    server.client().put_object(Bucket=bucket, Key="state/skills/alpha/a.txt", Body=b"changed\n")
    fault_proxy.clear()
    again = backup_json(repo)
    assert again["copied"] == 1
    # planned once without the lease, once under it; the lease was taken (PUT) and released
    assert fault_proxy.counts["ListObjectsV2"] == 2, fault_proxy.counts
    assert fault_proxy.counts["PutObject"] >= 1 and lock_entries(server, bucket) == []
    assert moto2.client().get_object(Bucket=dest, Key="state/skills/alpha/a.txt")["Body"].read() == b"changed\n"


# ---------------------------------------------------------------------- prepare during the settle wait
class FakeClock:
    """Stands in for `time` in dr_tasks.lease.client: `prepare` advances it, `sleep` records what was left to wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.mark.parametrize("prepare_takes", [0.2, 2.0])
def test_prepare_runs_inside_the_settle_wait_and_before_the_body(server, bucket, make_repo, monkeypatch, prepare_takes):
    clock = FakeClock()
    monkeypatch.setattr(lock_mod, "time", clock)
    calls: list[str] = []

    def prepare() -> None:
        calls.append("prepare")
        clock.now += prepare_takes

    with hold_lease(make_repo(server, bucket).cfg(), operation="t", prepare=prepare) as lease:
        calls.append("body")
    assert calls == ["prepare", "body"]
    # RGW ignores If-None-Match (read-back), moto honours it; the lease is read back in both
    # modes, and prepare fills the settle wait.
    assert lease.mode == (MODE_READ_BACK if server.name == "rgw" else MODE_CONDITIONAL)
    left = lock_mod.SETTLE_SECONDS - prepare_takes
    assert clock.slept == ([round(left, 6)] if left > 0 else [])
    assert lock_entries(server, bucket) == []


def test_snapshot_lists_live_keys_while_the_lease_settles_and_copies_after(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    fault_proxy.clear()
    r = repo.run("dr.snapshot", "--label=planned", "--json")
    assert r.returncode == 0, r.stderr
    log = fault_proxy.log
    lease_looks = [i for i, (op, _, prefix) in enumerate(log) if op == "ListObjectVersions" and prefix == LOCK_KEY]
    live_list = [i for i, (op, _, prefix) in enumerate(log) if op == "ListObjectVersions" and prefix != LOCK_KEY]
    copies = [i for i, (op, _, _) in enumerate(log) if op == "CopyObject"]
    assert len(copies) == len(files) and live_list, log
    # Read back in both modes: the listing fills the settle wait, the copies wait for the confirmation.
    assert lease_looks[0] < live_list[0] and live_list[-1] < lease_looks[1] < copies[0], log


def test_racing_with_prepare_still_lets_exactly_one_hold(server, bucket, make_repo):
    cfg = make_repo(server, bucket).cfg()
    start = threading.Barrier(4)
    losers_done = threading.Semaphore(0)
    results: dict[int, Any] = {}

    def contender(i: int) -> None:
        planned: list[int] = []
        start.wait()
        try:
            with hold_lease(cfg, operation=f"t{i}", prepare=lambda: planned.append(i)):
                results[i] = list(planned)
                for _ in range(3):  # hold until every other contender has given up
                    assert losers_done.acquire(timeout=60)
        except LockHeld as err:
            results[i] = err
            losers_done.release()

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    winners = {i: r for i, r in results.items() if not isinstance(r, Exception)}
    assert len(results) == 4 and len(winners) == 1, results
    (i, planned), *_ = winners.items()
    assert planned and set(planned) == {i}  # the winner's body saw its own plan
    assert lock_entries(server, bucket) == []


# ---------------------------------------------------------------------- the lease's own requests
def test_a_conditional_lease_costs_two_listings_of_the_lease(moto_server, make_repo, fault_proxy_moto):
    """moto honours If-None-Match: HEAD (free), PUT, PUT probe (412), two read-backs, DeleteObjects by id.

    A 412 on the probe says the key exists, not whose version counts, so the
    lease is confirmed by reading it back as on a store that ignores the
    header; nothing more (the release deletes by id without listing).
    """
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    repo.seed()
    cfg = repo.cfg()
    with hold_lease(cfg, operation="uncounted") as lease, count_requests() as own:
        take_snapshot(cfg, "uncounted", lease=lease)  # the snapshot's own requests, the lease taken before
    fault_proxy_moto.clear()
    r = repo.run("dr.snapshot", "--label=counted", "--json")
    assert r.returncode == 0, r.stderr
    counts = fault_proxy_moto.counts
    assert counts["ListObjectVersions"] == own["ListObjectVersions"] + 2, (counts, own)
    assert counts["PutObject"] == own["PutObject"] + 2 and counts["DeleteObjects"] == 1, (counts, own)
    assert lock_entries(moto_server, bucket) == []


def test_the_release_lists_the_lease_only_after_a_put_of_ours_was_sent_twice(server, bucket, make_repo, fault_proxy):
    # Read-back (both modes): the confirmation listed every version of ours, and
    # PUTs sent once each leave none unseen, so the release deletes by id (one
    # round trip less). A PUT sent twice may have left one we never saw: then
    # the release lists first.
    from tests.support.faultproxy import Rule

    def lease_looks() -> int:
        return sum(1 for op, _, prefix in fault_proxy.log if op == "ListObjectVersions" and prefix == LOCK_KEY)

    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()
    fault_proxy.clear()
    assert repo.run("dr.snapshot", "--label=calm").returncode == 0
    assert lease_looks() == 2, fault_proxy.log
    assert lock_entries(server, bucket) == []

    fault_proxy.clear()
    fault_proxy.add(Rule(op="PutObject", key="lock.json", fault=503, times=1))
    assert repo.run("dr.snapshot", "--label=bumpy").returncode == 0
    assert fault_proxy.faults["PutObject:503"] == 1
    assert lease_looks() == 3, fault_proxy.log
    assert lock_entries(server, bucket) == []
