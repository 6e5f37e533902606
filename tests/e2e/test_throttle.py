"""A store that limits request rates (issue 20 item 4): the real `inv` through a proxy that throttles.

DigitalOcean Spaces answers 503 SlowDown above a request rate per bucket and
above a few concurrent writes to one object. The fault proxy plays that store
(`Throttle`: RATE requests a second, a small burst, PER_KEY writes in flight per
key) in front of moto's server and Ceph RGW, and its timeline says what it
admitted and what it refused, when.

With `max_requests_per_second` set to the store's rate, snapshot, restore
`--all` and backup finish correct, are refused (503) for under 5 % of their
requests and sustain at least 90 % of the rate over their bulk phase. Without
the setting they still finish correct, slowed by 503s: the bound there (503s
under a quarter of requests) is what backing off on each SlowDown must keep
to, against the client's unthrottled pace of several times the rate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from dr_tasks import take_snapshot
from tests.conftest import HostRepo, Server, live_objects, local_tree
from tests.e2e.test_backup import backup_objects, configure_backup, primary_objects
from tests.support.faultproxy import FaultProxy, Throttle

# The stores' allowed rates sit below what this shared 2-core machine serves unthrottled with its
# neighbours' load (the stores and their proxies run in the test's own process; a snapshot tops out
# near 45 requests a second, a backup, each object through two stores, near half that), so the
# limit, not the machine, sets the pace and the 90 % bound measures the client.
RATE = 30
BACKUP_RATE = 15
PER_KEY = 2
N = 200
# Enough requests in flight that the client, not the (loaded, shared) test machine, sets the pace.
CONCURRENCY = 16


@pytest.fixture
def throttled(fault_proxy: FaultProxy) -> FaultProxy:
    """conftest's fault proxy in front of the server under test, named for what it does here."""
    return fault_proxy


@pytest.fixture
def throttled2(moto2: Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto2.endpoint) as proxy:
        yield proxy


def many_files(n: int = N) -> dict[str, bytes]:
    return {f"state/skills/u{i % 4}/f{i:04d}.txt": f"object {i}\n".encode() * (1 + i % 7) for i in range(n)}


def throttle(proxy: FaultProxy, rate: int = RATE) -> None:
    proxy.clear()
    proxy.throttle = Throttle(rate=rate, burst=10, per_key_writes=PER_KEY)


def refused_share(proxy: FaultProxy) -> float:
    """503s the throttle answered, as a share of every request it saw."""
    timeline = proxy.timeline
    assert timeline, "no request reached the proxy"
    return sum(refused for _, _, refused in timeline) / len(timeline)


def sustained_rate(proxy: FaultProxy, bulk_op: str) -> float:
    """Requests admitted a second from the first `bulk_op` to the last: the pace of the bulk phase."""
    times = [t for t, op, refused in proxy.timeline if op == bulk_op and not refused]
    assert len(times) >= 50, proxy.counts
    first, last = times[0], times[-1]
    admitted = sum(1 for t, _, refused in proxy.timeline if not refused and first <= t <= last)
    return (admitted - 1) / (last - first)


def summary(proxy: FaultProxy) -> str:
    return f"counts={dict(proxy.counts)} faults={dict(proxy.faults)}"


def assert_paced(proxy: FaultProxy, bulk_op: str, allowed: int = RATE) -> None:
    share, rate = refused_share(proxy), sustained_rate(proxy, bulk_op)
    assert share < 0.05, (share, summary(proxy))
    assert rate >= 0.9 * allowed, (rate, summary(proxy))


def run_json(repo: HostRepo, *args: str) -> dict:
    r = repo.run(*args, "--json", timeout=300)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def snapshot_objects(repo: HostRepo, snap_id: str) -> dict[str, bytes]:
    prefix = f"snapshots/{snap_id}/"
    return {k[len(prefix) :]: v for k, v in live_objects(repo.server, repo.bucket, prefix).items()}


# ---------------------------------------------------------------------- snapshot
@pytest.mark.parametrize("transfer_client", ["crt", "classic"])
@pytest.mark.parametrize("limited", [True, False], ids=["max-rate", "adaptive"])
def test_snapshot_through_a_throttling_store(server, bucket, make_repo, throttled, transfer_client, limited):
    config = {"max_requests_per_second": RATE} if limited else {}
    repo = make_repo(
        server, bucket, endpoint_url=throttled.url, transfer_client=transfer_client, concurrency=CONCURRENCY, **config
    )
    files = repo.seed(many_files())
    throttle(throttled)
    row = run_json(repo, "dr.snapshot", "--label=throttled")
    assert row["objects"] == len(files)
    assert snapshot_objects(repo, row["id"]) == files
    if limited:
        assert_paced(throttled, "CopyObject")
    else:
        assert refused_share(throttled) < 0.25, summary(throttled)


# ---------------------------------------------------------------------- restore --all
@pytest.mark.parametrize("limited", [True, False], ids=["max-rate", "adaptive"])
def test_restore_all_through_a_throttling_store(server, bucket, make_repo, throttled, limited):
    config = {"max_requests_per_second": RATE} if limited else {}
    repo = make_repo(server, bucket, endpoint_url=throttled.url, concurrency=CONCURRENCY, **config)
    files = repo.seed(many_files())
    take_snapshot(repo.cfg(), "before")
    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    throttle(throttled)
    res = run_json(repo, "dr.restore", "--all", ts)
    assert local_tree(repo.path / res["holding_dir"]) == files
    if limited:
        assert_paced(throttled, "GetObject")
    else:
        assert refused_share(throttled) < 0.25, summary(throttled)


# ---------------------------------------------------------------------- backup
@pytest.mark.parametrize("limited", [True, False], ids=["max-rate", "adaptive"])
def test_backup_between_two_throttling_stores(server, bucket, make_repo, throttled, moto2, throttled2, limited):
    config = {"max_requests_per_second": BACKUP_RATE} if limited else {}
    repo = make_repo(server, bucket, endpoint_url=throttled.url, concurrency=CONCURRENCY, **config)
    repo.seed(many_files(N // 2))
    take_snapshot(repo.cfg(), "before")
    dest = configure_backup(repo, moto2, endpoint_url=throttled2.url)
    want = primary_objects(repo)
    throttle(throttled, BACKUP_RATE)
    throttle(throttled2, BACKUP_RATE)
    result = run_json(repo, "dr.backup")
    assert result["copied"] == len(want) and not result["partial"]
    assert backup_objects(moto2, dest) == want
    if limited:
        assert_paced(throttled, "GetObject", BACKUP_RATE)
        assert_paced(throttled2, "PutObject", BACKUP_RATE)
    else:
        assert refused_share(throttled) < 0.25, summary(throttled)
        assert refused_share(throttled2) < 0.25, summary(throttled2)
