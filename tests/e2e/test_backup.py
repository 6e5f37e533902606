"""`inv dr.backup` end to end: two S3 servers on 127.0.0.1 as the two regions.

The primary is the `server` fixture (moto and Ceph RGW); the backup region is
a second moto server on another port started here (`moto2`), or RGW with its
own credentials from `dr.backup.*`. Every run is the real `inv` subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from dr_tasks import take_snapshot
from tests.conftest import INV, HostRepo, Server, assert_clean_refusal, bucket_state, live_objects, new_bucket
from tests.support.faultproxy import FaultProxy, Rule

STATE_KEY = ".dr-tasks/backup-state.json"
MiB = 1024 * 1024


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def proxy2(moto2: Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto2.endpoint) as proxy:
        yield proxy


def configure_backup(
    repo: HostRepo, backup: Server, *, endpoint_url: str | None = None, bucket: str | None = None, **extra: Any
) -> str:
    """Create a versioned backup bucket on `backup` and point the repo's dr.backup at it (own credentials)."""
    name = bucket or new_bucket(backup)
    repo.write_config(
        backup={
            "bucket": name,
            "endpoint_url": endpoint_url or backup.endpoint,
            "region": "eu-west-1",
            "access_key_id": backup.access_key,
            "secret_access_key": backup.secret_key,
            **extra,
        }
    )
    return name


def primary_objects(repo: HostRepo) -> dict[str, bytes]:
    """What a backup must hold: every current object but our own bookkeeping."""
    return {k: v for k, v in live_objects(repo.server, repo.bucket).items() if not k.startswith(".dr-tasks/")}


def backup_objects(backup: Server, bucket: str, prefix: str = "") -> dict[str, bytes]:
    return {
        k[len(prefix) :]: v
        for k, v in live_objects(backup, bucket, prefix).items()
        if not k.startswith(prefix + ".dr-tasks/")
    }


def backup_json(repo: HostRepo, *args: str) -> dict[str, Any]:
    r = repo.run("dr.backup", "--json", *args)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def seeded(repo: HostRepo) -> dict[str, bytes]:
    files = repo.seed()
    take_snapshot(repo.cfg(), "before-backup")
    return files


def backup_rows(repo: HostRepo) -> list[dict[str, Any]]:
    return [r for r in repo.index_rows() if r["kind"] == "cross-region-backup"]


# ---------------------------------------------------------------------- full copy
def test_full_copy_is_byte_identical_with_snapshots_and_manifests(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    want = primary_objects(repo)
    assert any(k.endswith(".manifest.json") for k in want) and any(k.startswith("snapshots/") for k in want)
    result = backup_json(repo)
    assert result["copied"] == len(want) and result["skipped"] == 0 and not result["partial"]
    assert result["bytes"] == sum(len(v) for v in want.values())
    assert backup_objects(moto2, dest) == want
    # the row: the contract's fields plus where it went
    (row,) = backup_rows(repo)
    assert row["v"] == 1 and row["id"] == result["id"] and row["ts"] == result["ts"]
    assert row["dest_bucket"] == dest and row["partial"] is False
    assert (row["copied"], row["skipped"], row["bytes"]) == (len(want), 0, result["bytes"])
    assert row["source"] == f"s3://{bucket}/" and row["dest_endpoint"] == moto2.endpoint
    assert isinstance(row["seconds"], float)
    # the state object sits beside the copy, under our own meta prefix
    state = json.loads(moto2.client().get_object(Bucket=dest, Key=STATE_KEY)["Body"].read())
    assert set(state["objects"]) == set(want)


def test_backup_prefix_and_table_output(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, prefix="repo/")
    seeded(repo)
    dest = configure_backup(repo, moto2, prefix="cold/")
    r = repo.run("dr.cross-region-backup")  # the alias
    assert r.returncode == 0, r.stderr
    assert f"-> s3://{dest}/cold/" in r.stdout and "copied" in r.stdout
    want = primary_objects(repo)
    assert all(k.startswith(("repo/", "snapshots/")) for k in want)
    assert backup_objects(moto2, dest, "cold/") == want
    assert moto2.client().get_object(Bucket=dest, Key="cold/" + STATE_KEY)["Body"].read()


# ---------------------------------------------------------------------- incremental
def test_second_run_sends_only_listings_and_third_copies_the_changes(server, bucket, make_repo, fault_proxy, proxy2):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    seeded(repo)
    dest = configure_backup(repo, Server("moto2", proxy2.url, "backup-key", "backup-secret"))
    first = backup_json(repo)
    total = first["copied"]

    fault_proxy.clear()
    proxy2.clear()
    second = backup_json(repo)
    assert (second["copied"], second["skipped"], second["bytes"]) == (0, total, 0)
    # the primary: one listing, plus the lease (a constant handful of requests on
    # .dr-tasks/lock.json: a no-change run only checks it is free, one HEAD),
    # nothing per object: no GET, no HEAD per object
    lease_ops = {"HeadObject", "ListObjectVersions", "PutObject", "DeleteObjects", "DeleteObject"}
    assert fault_proxy.counts["ListObjectsV2"] == 1, fault_proxy.counts
    assert set(fault_proxy.counts) <= {"ListObjectsV2", *lease_ops}, fault_proxy.counts
    assert sum(fault_proxy.counts[op] for op in lease_ops) <= 8 < total, fault_proxy.counts
    # the backup: one listing plus one GET of the state object
    assert dict(proxy2.counts) == {"ListObjectsV2": 1, "GetObject": 1}, proxy2.counts
    assert len(backup_rows(repo)) == 2

    c = server.client()
    c.put_object(Bucket=bucket, Key="state/skills/alpha/a.txt", Body=b"changed after the first backup\n")
    c.put_object(Bucket=bucket, Key="state/skills/gamma/new.txt", Body=b"added after the first backup\n")
    fault_proxy.clear()
    proxy2.clear()
    third = backup_json(repo)
    assert (third["copied"], third["skipped"]) == (2, total - 1)
    assert proxy2.counts["PutObject"] == 3  # the two objects and the state
    assert fault_proxy.counts["GetObject"] == 2
    assert fault_proxy.counts["HeadObject"] <= 2  # the lease's look (is it free?), never per object
    got = backup_objects(server_for(proxy2), dest)
    assert got["state/skills/alpha/a.txt"] == b"changed after the first backup\n"
    assert got["state/skills/gamma/new.txt"] == b"added after the first backup\n"
    assert got == primary_objects(repo)


def test_the_same_bucket_through_another_url_keeps_its_state(moto_server, make_repo, moto2, fault_proxy_moto):
    # http -> https, a CNAME, a proxy: the state's entries vouch for exact
    # (source ETag, size, destination ETag) triples, which hold whatever the
    # URL the source was read through; a full re-copy would buy nothing.
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    seeded(repo)
    configure_backup(repo, moto2)
    first = backup_json(repo)
    repo.write_config(endpoint_url=moto_server.endpoint)
    r = repo.run("dr.backup", "--json")
    assert r.returncode == 0, r.stderr
    second = json.loads(r.stdout)
    assert (second["copied"], second["skipped"]) == (0, first["copied"]), second
    assert "copied again" not in r.stderr


def server_for(proxy: FaultProxy) -> Server:
    return Server("via-proxy", proxy.url, "backup-key", "backup-secret")


def test_an_object_changed_or_lost_at_the_destination_is_copied_again(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    backup_json(repo)
    c2 = moto2.client()
    c2.put_object(Bucket=dest, Key="state/notes/readme.txt", Body=b"tampered")
    c2.delete_object(Bucket=dest, Key="state/skills/alpha/b.json")
    again = backup_json(repo)
    assert again["copied"] == 2
    assert backup_objects(moto2, dest) == primary_objects(repo)


# ---------------------------------------------------------------------- memory
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:])\n"
    "sys.stderr.write('\\nPEAK_RSS_KIB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(r.returncode)\n"
)


def run_measured(repo: HostRepo, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `inv <args>` under a fresh wrapper process; its RUSAGE_CHILDREN max RSS is the inv process's peak."""
    r = repo.run("-c", RSS_WRAPPER, INV, *args, program=sys.executable, timeout=600)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("PEAK_RSS_KIB=")][-1]
    return r, int(line.split("=")[1]) * 1024


def test_200_mib_object_streams_with_peak_rss_far_below_its_size(moto_server, make_repo, moto2, tmp_path):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, concurrency=4)
    size = 200 * MiB
    big = tmp_path / "big.bin"
    md5 = hashlib.md5()
    with big.open("wb") as fh:
        for _ in range(size // (8 * MiB)):
            chunk = os.urandom(8 * MiB)
            md5.update(chunk)
            fh.write(chunk)
    moto_server.client().upload_file(str(big), bucket, "state/big/blob.bin")
    big.unlink()
    moto_server.client().put_object(Bucket=bucket, Key="state/small.txt", Body=b"small")
    dest = configure_backup(repo, moto2)

    r, peak = run_measured(repo, "dr.backup", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip())
    assert result["copied"] == 2 and result["bytes"] == size + 5
    # a no-op run of the same process: the interpreter, boto3, invoke and rich
    r0, baseline = run_measured(repo, "dr.backup", "--json")
    assert r0.returncode == 0 and json.loads(r0.stdout.strip())["copied"] == 0
    print(f"peak RSS copying 200 MiB: {peak / MiB:.1f} MiB; no-op baseline {baseline / MiB:.1f} MiB")
    assert peak < size / 2, peak
    # one worker streams the object: at most a few 8 MiB parts above the baseline
    assert peak - baseline < 32 * MiB, (peak, baseline)

    # byte-identical, without holding 200 MiB in the test either
    body = moto2.client().get_object(Bucket=dest, Key="state/big/blob.bin")["Body"]
    got = hashlib.md5()
    for chunk in body.iter_chunks(8 * MiB):
        got.update(chunk)
    assert got.hexdigest() == md5.hexdigest()


# ---------------------------------------------------------------------- mirror
def test_mirror_shows_its_deletes_and_needs_apply(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    backup_json(repo)
    server.client().delete_object(Bucket=bucket, Key="state/notes/readme.txt")

    # without --mirror the destination keeps what the primary lost
    kept = backup_json(repo)
    assert kept["deleted"] == 0
    assert "state/notes/readme.txt" in backup_objects(moto2, dest)

    before_index, before_dest = repo.index_bytes(), bucket_state(moto2, dest)
    r = repo.run("dr.backup", "--mirror")
    assert_clean_refusal(r, "delete s3://" + dest + "/state/notes/readme.txt", "refusing without --apply", "--apply")
    assert repo.index_bytes() == before_index
    assert bucket_state(moto2, dest) == before_dest

    alone = repo.run("dr.backup", "--apply")
    assert_clean_refusal(alone, "--apply only confirms the deletes of --mirror")
    assert bucket_state(moto2, dest) == before_dest

    applied = backup_json(repo, "--mirror", "--apply")
    assert applied["deleted"] == 1 and applied["mirror"] is True
    assert backup_objects(moto2, dest) == primary_objects(repo)
    state = json.loads(moto2.client().get_object(Bucket=dest, Key=STATE_KEY)["Body"].read())
    assert "state/notes/readme.txt" not in state["objects"]


def test_a_mirror_from_an_emptied_or_repointed_primary_is_refused_and_deletes_nothing(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    backup_json(repo)
    held = backup_objects(moto2, dest)
    # dr.bucket now names a new, empty bucket (as after a lost primary, before `dr.recover`)
    repo.write_config(bucket=new_bucket(server))
    before_index, before_dest = repo.index_bytes(), bucket_state(moto2, dest)
    for args in (("--mirror",), ("--mirror", "--apply")):
        r = repo.run("dr.backup", *args)
        assert_clean_refusal(r, f"would delete all {len(held)} objects", "lists no objects", "dr.recover --apply")
        assert repo.index_bytes() == before_index
        assert bucket_state(moto2, dest) == before_dest
    assert backup_objects(moto2, dest) == held


def test_a_changed_snapshot_object_never_overwrites_its_cold_copy(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    backup_json(repo)
    snap_key = next(k for k in primary_objects(repo) if k.startswith("snapshots/") and k.endswith("/a.txt"))
    good = backup_objects(moto2, dest)[snap_key]
    server.client().put_object(Bucket=bucket, Key=snap_key, Body=b"CORRUPTED" + bytes(len(good) - 9))
    server.client().put_object(Bucket=bucket, Key="state/notes/new.txt", Body=b"a new live key")

    r = repo.run("dr.backup")
    assert r.returncode == 1
    assert snap_key in r.stderr and "snapshot objects never change" in r.stderr and "fix:" in r.stderr
    held = backup_objects(moto2, dest)
    assert held[snap_key] == good  # the cold copy is untouched
    assert held["state/notes/new.txt"] == b"a new live key"  # everything else went on
    assert backup_rows(repo)[-1]["partial"] is True


def test_pins_are_backed_up_and_a_mirror_drops_an_unpinned_one(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, prefix="repo/", snapshot_prefix="snaps/")
    repo.seed()
    snap = json.loads(repo.run("dr.snapshot", "--label=keep-me", "--json").stdout)
    assert repo.run("dr.pin", snap["id"], "--reason=audit").returncode == 0
    dest = configure_backup(repo, moto2, prefix="cold/")
    backup_json(repo)
    pin_key = f"cold/.dr-tasks/pins/{snap['id']}.json"
    assert json.loads(live_objects(moto2, dest, pin_key)[pin_key])["reason"] == "audit"
    assert backup_json(repo)["copied"] == 0  # the pin is in the state like any object
    assert repo.run("dr.pin", snap["id"], "--unpin").returncode == 0
    assert backup_json(repo, "--mirror", "--apply")["deleted"] == 1
    assert pin_key not in live_objects(moto2, dest, "cold/")


def test_mirror_never_touches_keys_outside_this_repos_prefixes(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, prefix="repo/")
    seeded(repo)
    dest = configure_backup(repo, moto2)
    moto2.client().put_object(Bucket=dest, Key="other-repo/keep.txt", Body=b"not ours")
    applied = backup_json(repo, "--mirror", "--apply")
    assert applied["deleted"] == 0
    assert "other-repo/keep.txt" in backup_objects(moto2, dest)


# ---------------------------------------------------------------------- failures
def test_failure_mid_backup_writes_a_partial_row_exits_1_and_a_rerun_completes(
    server, bucket, make_repo, moto2, proxy2
):
    repo = make_repo(server, bucket)
    seeded(repo)
    dest = configure_backup(repo, server_for(proxy2))
    proxy2.add(Rule(op="PutObject", key="beta/blob.bin", fault=403, times=-1))
    proxy2.add(Rule(op="PutObject", key="alpha", fault=503, times=2))  # transient: retried
    r = repo.run("dr.backup")
    assert_clean_refusal(r, "partial", "state/skills/beta/blob.bin", "AccessDenied", "run `inv dr.backup` again")
    assert "[PARTIAL]" in r.stdout
    assert proxy2.faults["PutObject:503"] == 2
    (row,) = backup_rows(repo)
    assert row["partial"] is True and row["failed"] >= 2  # the live object and its snapshot copy
    total = row["objects"]
    assert row["copied"] == total - row["failed"]
    fresh = repo.run("dr.freshness")
    assert_clean_refusal(fresh, "checks failed: backup")  # each failure once: its detail is on stdout
    assert "no complete cross-region-backup row" in fresh.stdout and "was partial" in fresh.stdout

    proxy2.clear()
    again = backup_json(repo)
    assert again["copied"] == row["failed"] and again["skipped"] == total - row["failed"]
    assert backup_objects(moto2, dest) == primary_objects(repo)
    assert repo.run("dr.freshness").returncode == 0


def test_source_read_errors_are_retried(server, bucket, make_repo, fault_proxy, moto2):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    fault_proxy.add(Rule(op="GetObject", fault="reset", times=2))
    fault_proxy.add(Rule(op="GetObject", fault=500, times=2))
    fault_proxy.add(Rule(op="ListObjectsV2", fault=503, times=1))
    result = backup_json(repo)
    assert not result["partial"]
    assert fault_proxy.faults["GetObject:reset"] == 2 and fault_proxy.faults["ListObjectsV2:503"] == 1
    assert backup_objects(moto2, dest) == primary_objects(repo)


# ---------------------------------------------------------------------- --if-older-than
def test_if_older_than_sends_nothing_when_the_last_complete_row_is_newer(
    moto_server, make_repo, fault_proxy_moto, proxy2
):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    seeded(repo)
    configure_backup(repo, server_for(proxy2))
    backup_json(repo)
    fault_proxy_moto.clear()
    proxy2.clear()
    before = repo.index_bytes()
    r = repo.run("dr.backup", "--if-older-than=6d")
    assert r.returncode == 0, r.stderr
    assert "not due" in r.stdout and "nothing sent" in r.stdout
    assert sum(fault_proxy_moto.counts.values()) == 0 and sum(proxy2.counts.values()) == 0
    assert repo.index_bytes() == before
    hours = repo.run("dr.backup", "--if-older-than=12h", "--json")
    assert hours.returncode == 0 and json.loads(hours.stdout)["not_due"] is True
    for mixed in ("1w", "1d12h", "90m"):
        due = repo.run("dr.backup", f"--if-older-than={mixed}", "--json")
        assert due.returncode == 0 and json.loads(due.stdout)["not_due"] is True, due.stderr

    bad = repo.run("dr.backup", "--if-older-than=6x")
    assert_clean_refusal(bad, "--if-older-than='6x' is not a duration", "e.g. --if-older-than=6d")
    assert sum(proxy2.counts.values()) == 0


def test_if_older_than_runs_when_the_last_complete_row_is_older_or_partial(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    old = (datetime.now(timezone.utc) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with repo.index_path.open("a") as fh:
        for ts, partial in ((old, False), (recent, True)):
            fh.write(
                json.dumps(
                    {"v": 1, "kind": "cross-region-backup", "id": f"{ts}-backup", "ts": ts, "dest_bucket": dest}
                    | {"copied": 0, "skipped": 0, "bytes": 0, "partial": partial}
                )
                + "\n"
            )
    ran = backup_json(repo, "--if-older-than=6d")
    assert ran["copied"] > 0 and not ran["partial"]
    assert backup_objects(moto2, dest) == primary_objects(repo)


# ---------------------------------------------------------------------- refusals
def test_unset_backup_bucket_is_one_line_naming_the_key_and_sends_nothing(moto_server, make_repo, fault_proxy_moto):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    r = repo.run("dr.backup")
    assert_clean_refusal(r, "dr.backup.bucket")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sum(fault_proxy_moto.counts.values()) == 0
    assert repo.index_bytes() == b""


def test_backup_into_the_primary_itself_is_refused(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.write_config(backup={"bucket": bucket, "endpoint_url": moto_server.endpoint})
    assert_clean_refusal(repo.run("dr.backup"), "dr.backup.bucket", "primary bucket itself")
    # the same server spelled another way is still the primary itself
    port = moto_server.endpoint.rsplit(":", 1)[1]
    for url in (moto_server.endpoint + "/", f"http://localhost:{port}", f"HTTP://127.0.0.1:{port}"):
        repo.write_config(backup={"bucket": bucket, "endpoint_url": url})
        assert_clean_refusal(repo.run("dr.backup"), "primary bucket itself")


def test_missing_backup_bucket_is_named_and_writes_no_row(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    seeded(repo)
    configure_backup(repo, moto2, bucket="no-such-backup-" + uuid.uuid4().hex[:8])
    before = repo.index_bytes()
    r = repo.run("dr.backup")
    assert_clean_refusal(r, "backup bucket", "does not exist", "dr.backup.bucket")
    assert repo.index_bytes() == before


def test_wrong_backup_secret_is_named_and_never_printed(moto_server, rgw_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    seeded(repo)
    secret = "backup-s3cr3t-that-must-not-leak"
    configure_backup(repo, rgw_server, secret_access_key=secret)
    r = repo.run("dr.backup")
    assert_clean_refusal(r, "SignatureDoesNotMatch")
    assert secret not in r.stderr + r.stdout


# ---------------------------------------------------------------------- RGW as the backup region
@pytest.mark.rgw
def test_rgw_backup_region_with_its_own_credentials_and_a_multipart_object(moto_server, rgw_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed({**repo.seed(), "state/big/twelve.bin": os.urandom(12 * MiB + 123)})
    take_snapshot(repo.cfg(), "multi")
    dest = configure_backup(repo, rgw_server)
    first = backup_json(repo)
    assert first["copied"] == len(primary_objects(repo))
    assert backup_objects(rgw_server, dest) == primary_objects(repo)
    second = backup_json(repo)
    assert second["copied"] == 0 and second["skipped"] == first["copied"]


# ---------------------------------------------------------------------- lease and hooks
def test_a_held_lease_stops_the_backup_before_anything_is_copied(moto_server, make_repo, moto2):
    from dr_tasks.lease import hold_lease

    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    seeded(repo)
    dest = configure_backup(repo, moto2)
    before = bucket_state(moto2, dest)
    with hold_lease(repo.cfg(), operation="snapshot"):
        r = repo.run("dr.backup")
    assert_clean_refusal(r, "held by", "snapshot")
    assert bucket_state(moto2, dest) == before and backup_rows(repo) == []


def test_post_backup_hook_gets_the_result(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    seeded(repo)
    configure_backup(repo, moto2)
    (repo.path / "myhooks.py").write_text(
        "import json\ndef after(c, result):\n    open('hook.out', 'w').write(json.dumps(result.row()))\n"
    )
    repo.write_config(hooks={"post_backup": ["myhooks:after"]})
    r = repo.run("dr.backup", env={"PYTHONPATH": str(repo.path)})
    assert r.returncode == 0, r.stderr
    assert json.loads((repo.path / "hook.out").read_text()) == backup_rows(repo)[0]


# ---------------------------------------------------------------------- the awscrt copy path
@pytest.mark.parametrize("client", ["crt", "classic"])
def test_both_copy_paths_keep_bytes_type_and_metadata_of_odd_keys(server, bucket, make_repo, moto2, proxy2, client):
    repo = make_repo(server, bucket, transfer_client=client)
    c = server.client()
    objects = {
        "state/odd/sp ace+plus%25.txt": (b"odd", "text/plain", {"owner": "ops"}),
        "state/odd/caf\u00e9 \u2713.json": (b'{"a": 1}', "application/json", {}),
        "state/odd/empty.bin": (b"", "application/octet-stream", {"kind": "empty"}),
        "state/odd/big.bin": (os.urandom(1024 * 1024 + 1), "application/octet-stream", {}),
    }
    for key, (body, ctype, meta) in objects.items():
        c.put_object(Bucket=bucket, Key=key, Body=body, ContentType=ctype, Metadata=meta)
    dest = configure_backup(repo, moto2, endpoint_url=proxy2.url)
    proxy2.counts.clear()
    result = backup_json(repo)
    assert result["copied"] == len(objects) and not result["partial"]
    # one PUT per object (none is multipart: that starts above 8 MiB) and two for the state object
    # (a first run claims the prefix for its source before the first copy, and saves it at the end)
    assert proxy2.counts["PutObject"] == len(objects) + 2
    got = moto2.client()
    for key, (body, ctype, meta) in objects.items():
        r = got.get_object(Bucket=dest, Key=key)
        assert (r["Body"].read(), r["ContentType"], r["Metadata"]) == (body, ctype, meta), key


def test_a_small_object_replaced_by_a_big_one_after_the_listing_is_streamed_not_buffered(
    server, bucket, make_repo, moto2, monkeypatch
):
    # Listed at 6 bytes, it is 3 MiB by the time its GET starts: the
    # in-memory path (objects up to 1 MiB) must not hold it whole, and the
    # object must still arrive, byte for byte, through the streaming path.
    from dr_tasks import run_backup
    from dr_tasks.transport.crt_client import _Call
    from dr_tasks.transport.crt_engine import BulkS3
    from dr_tasks.transport.settings import SMALL_OBJECT

    repo = make_repo(server, bucket)
    repo.seed()
    backup_bucket = configure_backup(repo, moto2)
    key = "state/skills/alpha/a.txt"
    big = os.urandom(3 * MiB)
    held: list[int] = []
    copy_small_from, on_body = BulkS3.copy_small_from, _Call.on_body

    def racing(self: Any, src: Any, jobs: Any) -> Any:
        server.client().put_object(Bucket=bucket, Key=key, Body=big)
        yield from copy_small_from(self, src, jobs)

    def watched(self: Any, chunk: bytes, offset: int, **kw: Any) -> None:
        on_body(self, chunk, offset, **kw)
        held.append(sum(len(b) for b in self.buf))

    monkeypatch.setattr(BulkS3, "copy_small_from", racing)
    monkeypatch.setattr(_Call, "on_body", watched)
    result = run_backup(repo.cfg())
    assert result.ok and not result.partial and result.failed == []
    got = moto2.client().get_object(Bucket=backup_bucket, Key=key)["Body"].read()
    assert hashlib.md5(got).hexdigest() == hashlib.md5(big).hexdigest()
    assert held and max(held) <= SMALL_OBJECT


def test_a_first_backup_into_an_unversioned_bucket_warns_and_a_versioned_one_does_not(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    configure_backup(repo, moto2, bucket=new_bucket(moto2, versioned=False))
    r = repo.run("dr.backup")
    assert r.returncode == 0 and "is not versioned" in r.stderr, r.stderr
    again = repo.run("dr.backup")  # nothing to copy: not asked again
    assert again.returncode == 0 and "is not versioned" not in again.stderr

    other = make_repo(moto_server, new_bucket(moto_server))
    other.seed()
    configure_backup(other, moto2)
    r = other.run("dr.backup")
    assert r.returncode == 0 and "versioned" not in r.stderr, r.stderr
