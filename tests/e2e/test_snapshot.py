"""`inv dr.snapshot` end to end: a real `inv` subprocess against real S3 servers over HTTP."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from dr_tasks import hold_lease, take_snapshot
from dr_tasks.transport import count_requests, settings
from tests.conftest import SAMPLE_FILES, assert_clean_refusal, bucket_state, live_objects, new_bucket
from tests.support.faultproxy import Rule


def snapshot_objects(repo, snap_id: str) -> dict[str, bytes]:
    prefix = f"snapshots/{snap_id}/"
    return {k[len(prefix) :]: v for k, v in live_objects(repo.server, repo.bucket, prefix).items()}


def test_snapshot_copies_every_live_key_byte_for_byte(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    files = repo.seed()
    r = repo.run("dr.snapshot", "--label=pre-migration", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["kind"] == "snapshot" and row["label"] == "pre-migration"
    assert row["id"].endswith("Z-pre-migration")
    assert row["objects"] == len(files)
    assert row["bytes"] == sum(len(v) for v in files.values())
    assert snapshot_objects(repo, row["id"]) == files
    # the row in the index is the one printed, on one whole line
    rows = repo.index_rows()
    assert len(rows) == 1 and rows[0] == row and rows[0]["v"] == 1
    # the manifest beside the snapshot names every key with its version id
    c = repo.client()
    manifest = json.loads(c.get_object(Bucket=bucket, Key=row["manifest"])["Body"].read())
    assert manifest["id"] == row["id"]
    assert {o["key"] for o in manifest["objects"]} == set(files)
    assert all(o["version_id"] for o in manifest["objects"])
    sizes = {o["key"]: o["size"] for o in manifest["objects"]}
    assert sizes == {k: len(v) for k, v in files.items()}


ODD_KEYS = {
    "state/skills/odd/has space.txt": b"space\n",
    "state/skills/odd/plus+sign.txt": b"plus\n",
    "state/skills/odd/per%cent~tilde.txt": b"percent\n",
    "state/skills/odd/caf\u00e9 \u2603.txt": b"unicode\n",
    "state/skills/odd/q?mark&amp=1.txt": b"query-looking\n",
}


def test_keys_that_need_escaping_are_copied_as_the_exact_version(server, bucket, make_repo):
    """The copy source is a URL the server decodes (with `?versionId=`): every character must survive."""
    repo = make_repo(server, bucket)
    c = repo.client()
    for key, body in ODD_KEYS.items():
        c.put_object(Bucket=bucket, Key=key, Body=body)
    r = repo.run("dr.snapshot", "--label=odd", "--json")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)["id"]
    assert snapshot_objects(repo, snap) == ODD_KEYS


def test_second_snapshot_does_not_copy_the_first(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    files = repo.seed()
    first = json.loads(repo.run("dr.snapshot", "--label=one", "--json").stdout)
    time.sleep(1.0)
    second = json.loads(repo.run("dr.snapshot", "--label=two", "--json").stdout)
    assert second["objects"] == first["objects"] == len(files)
    assert set(snapshot_objects(repo, second["id"])) == set(files)


@pytest.mark.parametrize(
    "label",
    ["a/b", "has space", "new\nline", "..", "", "UPPER", "a..b", "x" * 64, "-leading", "caf\u00e9", "$(rm -rf /)"],
)
def test_bad_labels_are_refused_and_nothing_changes(moto_server, make_repo, label):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    before_index, before_bucket = repo.index_bytes(), bucket_state(moto_server, bucket)
    r = repo.run("dr.snapshot", f"--label={label}")
    assert_clean_refusal(r, "invalid label", "[a-z0-9][a-z0-9._-]{0,62}")
    assert repo.index_bytes() == before_index
    assert bucket_state(moto_server, bucket) == before_bucket


def test_existing_snapshot_id_is_refused(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    # rows for the next few seconds' ids, so the id the task computes exists already
    now = datetime.now(timezone.utc)
    with repo.index_path.open("a") as fh:
        for s in range(0, 20):
            ts = (now + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(json.dumps({"v": 1, "kind": "snapshot", "id": f"{ts}-dup", "ts": ts, "label": "dup"}) + "\n")
    before_index, before_bucket = repo.index_bytes(), bucket_state(moto_server, bucket)
    r = repo.run("dr.snapshot", "--label=dup")
    assert_clean_refusal(r, "already exists")
    assert repo.index_bytes() == before_index
    assert bucket_state(moto_server, bucket) == before_bucket


def test_a_key_too_long_for_the_snapshot_dir_is_named_before_any_copy(server, bucket, make_repo):
    repo = make_repo(server, bucket)
    repo.seed()
    long_key = "state/skills/alpha/" + "k" * 980  # fits live (999 bytes), not under snapshots/<id>/
    server.client().put_object(Bucket=bucket, Key=long_key, Body=b"x")
    before_index, before_bucket = repo.index_bytes(), bucket_state(server, bucket)
    r = repo.run("dr.snapshot", "--label=long")
    assert_clean_refusal(r, "1 live keys would be longer than S3's 1024 bytes", "state/skills/alpha/kkk", "bytes here")
    assert repo.index_bytes() == before_index
    assert bucket_state(server, bucket) == before_bucket


def test_existing_id_in_bucket_is_refused_by_the_api(moto_server, make_repo):
    from dr_tasks import DrError

    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    cfg = repo.cfg()
    when = datetime(2026, 4, 15, 18, 0, tzinfo=timezone.utc)
    take_snapshot(cfg, "same", now=when)
    # the local index is lost; the manifest in the bucket still says the id is taken
    repo.index_path.write_bytes(b"")
    with pytest.raises(DrError, match="already exists in the bucket"):
        take_snapshot(cfg, "same", now=when)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"bucket": None}, "dr.bucket: is not set"),
        ({"bucket": "Bad_Bucket/x"}, "dr.bucket"),
        ({"endpoint_url": "tor1.digitaloceanspaces.com"}, "dr.endpoint_url"),
        ({"concurrency": 0}, "dr.concurrency: must be at least 1"),
        ({"concurrency": "many"}, "dr.concurrency"),
        ({"prefix": "no-trailing-slash"}, "dr.prefix"),
        ({"hooks": {"post_snapshot": 5}}, "dr.hooks.post_snapshot"),
    ],
)
def test_bad_config_is_one_line_and_sends_no_request(moto_server, make_repo, fault_proxy_moto, config, needle):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url)
    repo.write_config(**config)
    if config.get("endpoint_url"):
        pass
    r = repo.run("dr.snapshot", "--label=x")
    assert_clean_refusal(r, needle)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sum(fault_proxy_moto.counts.values()) == 0
    assert repo.index_bytes() == b""


def test_env_var_overrides_config(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    repo.write_config(bucket=None)
    r = repo.run("dr.snapshot", "--label=env", "--json", env={"INVOKE_DR_BUCKET": bucket})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bucket"] == bucket


def test_permanent_copy_failure_writes_no_row_and_rerun_succeeds(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    fault_proxy.add(Rule(op="CopyObject", key="beta/blob.bin", fault=403, times=-1))
    r = repo.run("dr.snapshot", "--label=try")
    assert_clean_refusal(r, "state/skills/beta/blob.bin", "no index row was written")
    assert repo.index_bytes() == b""
    assert not any(k.endswith(".manifest.json") for k in live_objects(server, bucket, "snapshots/"))
    fault_proxy.clear()
    r = repo.run("dr.snapshot", "--label=try", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert snapshot_objects(repo, row["id"]) == files
    assert len(repo.index_rows()) == 1


def test_throttling_and_resets_mid_copy_are_retried(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    fault_proxy.add(Rule(op="CopyObject", fault=503, times=3))
    fault_proxy.add(Rule(op="CopyObject", fault="reset", times=2))
    fault_proxy.add(Rule(op="ListObjectVersions", fault=500, times=1))
    r = repo.run("dr.snapshot", "--label=bumpy", "--json")
    assert r.returncode == 0, r.stderr
    assert fault_proxy.faults["CopyObject:503"] == 3
    assert fault_proxy.faults["CopyObject:reset"] == 2
    assert fault_proxy.faults["ListObjectVersions:500"] == 1
    assert snapshot_objects(repo, json.loads(r.stdout)["id"]) == files


def test_a_copy_that_fails_after_its_200_is_retried_and_then_refused(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    files = repo.seed()
    fault_proxy.add(Rule(op="CopyObject", key="alpha/", fault="200-error", times=2))
    r = repo.run("dr.snapshot", "--label=late-error", "--json")
    assert r.returncode == 0, r.stderr
    assert fault_proxy.faults["CopyObject:200-error"] == 2
    assert snapshot_objects(repo, json.loads(r.stdout)["id"]) == files

    fault_proxy.add(Rule(op="CopyObject", key="beta/blob.bin", fault="200-error", times=-1))
    before = repo.index_bytes()
    r = repo.run("dr.snapshot", "--label=never")
    assert_clean_refusal(r, "state/skills/beta/blob.bin", "InternalError", "no index row was written")
    assert repo.index_bytes() == before
    assert not any("never" in k for k in live_objects(server, bucket, "snapshots/"))


def test_writes_during_the_snapshot_do_not_tear_it(server, bucket, make_repo, fault_proxy):
    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url, concurrency=1)
    files = repo.seed()
    # every copy is slowed, so the writes below land while copies are running
    fault_proxy.add(Rule(op="CopyObject", fault=None, times=-1, delay=0.3))
    c = server.client()

    def writer() -> None:
        deadline = time.monotonic() + 30
        while fault_proxy.counts["CopyObject"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        for k in files:
            c.put_object(Bucket=bucket, Key=k, Body=b"written during the snapshot")
        c.delete_object(Bucket=bucket, Key="state/skills/alpha/a.txt")
        c.put_object(Bucket=bucket, Key="state/skills/alpha/new-during.txt", Body=b"new")

    t = threading.Thread(target=writer)
    t.start()
    r = repo.run("dr.snapshot", "--label=busy", "--json")
    t.join()
    assert r.returncode == 0, r.stderr
    assert snapshot_objects(repo, json.loads(r.stdout)["id"]) == files


def test_failing_pre_hook_stops_before_anything_is_written(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    repo.write_config(hooks={"pre_snapshot": ["exit 3"]})
    before = bucket_state(moto_server, bucket)
    r = repo.run("dr.snapshot", "--label=hooked")
    assert_clean_refusal(r, "hook pre_snapshot 'exit 3' exited 3")
    assert repo.index_bytes() == b""
    assert bucket_state(moto_server, bucket) == before


def test_post_hooks_run_commands_and_callables_with_the_result(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    (repo.path / "myhooks.py").write_text(
        "import json\ndef after(c, result):\n    open('callable.out', 'w').write(json.dumps(result.row()))\n"
    )
    repo.write_config(hooks={"post_snapshot": ["echo pushed > command.out", "myhooks:after"]})
    r = repo.run("dr.snapshot", "--label=hooked", "--json", env={"PYTHONPATH": str(repo.path)})
    assert r.returncode == 0, r.stderr
    assert (repo.path / "command.out").read_text().strip() == "pushed"
    row = json.loads((repo.path / "callable.out").read_text())
    assert row["id"] == repo.index_rows()[0]["id"]


def test_unversioned_bucket_still_snapshots_and_says_what_it_lacks(server, make_repo):
    bucket = new_bucket(server, versioned=False)
    repo = make_repo(server, bucket)
    files = repo.seed()
    r = repo.run("dr.snapshot", "--label=plain", "--json")
    assert r.returncode == 0, r.stderr
    assert "point-in-time restore needs versioning" in r.stderr
    assert snapshot_objects(repo, json.loads(r.stdout)["id"]) == files


def test_torn_index_line_is_kept_and_reported(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    good = json.dumps(
        {"v": 1, "kind": "snapshot", "id": "2026-01-01T00:00:00Z-old", "ts": "2026-01-01T00:00:00Z", "label": "old"}
    )
    torn = '{"v": 1, "kind": "snap'
    repo.index_path.write_text(good + "\n" + torn)
    r = repo.run("dr.snapshot", "--label=after-crash", "--json")
    assert r.returncode == 0, r.stderr
    assert "line 2" in r.stderr and "torn" not in r.stdout
    lines = repo.index_bytes().decode().split("\n")
    assert lines[0] == good and lines[1] == torn  # never rewritten
    assert json.loads(lines[2])["label"] == "after-crash"
    listed = repo.run("dr.list", "--json")
    assert listed.returncode == 0
    data = json.loads(listed.stdout)
    assert [s["label"] for s in data["snapshots"]] == ["old", "after-crash"]
    assert data["bad_lines"][0]["line"] == 2


def test_list_and_show(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    row = json.loads(repo.run("dr.snapshot", "--label=listed", "--json").stdout)
    table = repo.run("dr.list")
    assert table.returncode == 0 and row["id"] in table.stdout and "listed" in table.stdout
    shown = repo.run("dr.show", row["id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["snapshot"] == row
    assert repo.run("dr.show", row["id"]).returncode == 0
    unknown = repo.run("dr.show", row["id"][:-1] + "X")
    assert_clean_refusal(unknown, "unknown snapshot id", row["id"])


def test_dr_program_is_the_same_collection(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    files = repo.seed()
    (repo.path / "tasks.py").unlink()  # the program needs no tasks.py, only invoke.yaml
    r = repo.dr("snapshot", "--label=standalone", "--json")
    assert r.returncode == 0, r.stderr
    assert snapshot_objects(repo, json.loads(r.stdout)["id"]) == files
    listed = repo.dr("list", "--json")
    assert json.loads(listed.stdout)["snapshots"][0]["label"] == "standalone"
    bad = repo.dr("snapshot", "--label=a/b")
    assert_clean_refusal(bad, "invalid label")


def test_wrong_credentials_are_named_and_the_secret_never_printed(moto_server, rgw_server, make_repo):
    bucket = new_bucket(rgw_server)
    repo = make_repo(rgw_server, bucket)
    secret = "s3cr3t-value-that-must-not-leak"
    r = repo.run("dr.snapshot", "--label=creds", env={"AWS_SECRET_ACCESS_KEY": secret})
    assert_clean_refusal(r, "SignatureDoesNotMatch")
    assert secret not in r.stderr + r.stdout


def test_missing_bucket_is_named(server, make_repo):
    repo = make_repo(server, "no-such-bucket-" + "x" * 8)
    r = repo.run("dr.snapshot", "--label=nobucket")
    assert_clean_refusal(r, "NoSuchBucket", "check dr.bucket")


@pytest.mark.rgw
def test_https_with_a_private_ca(rgw_server, make_repo):
    """boto3's default aws-chunked checksums get 411 from RGW over HTTPS; ours must not."""
    bucket = new_bucket(rgw_server)
    repo = make_repo(rgw_server, bucket, endpoint_url=rgw_server.https_endpoint)
    files = repo.seed()
    r = repo.run("dr.snapshot", "--label=tls", "--json", env={"AWS_CA_BUNDLE": rgw_server.ca_bundle})
    assert r.returncode == 0, r.stderr
    assert snapshot_objects(repo, json.loads(r.stdout)["id"]) == files


def test_request_count_is_one_listing_page_per_thousand_keys_and_one_copy_per_object(server, make_repo, monkeypatch):
    # The serial listing's pages (TransferConfig.listing_partitions=1); the partitioned one adds a
    # delimited listing per directory level and a request per directory (test_listing_split.py).
    monkeypatch.setattr(settings, "LISTING_PARTITIONS", 1)
    bucket = new_bucket(server)
    repo = make_repo(server, bucket)
    c = server.client(max_pool_connections=32)
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"state/skills/u{i % 7}/k{i:05d}.txt" for i in range(1050)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: c.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    cfg = repo.cfg()
    # The snapshot's own requests: the caller holds the lease, taken before counting.
    with hold_lease(cfg, operation="count") as lease, count_requests() as counts:
        result = take_snapshot(cfg, "counted", lease=lease)
    assert result.objects == 1050
    assert counts["ListObjectVersions"] == 2  # no snapshots yet: the plain listing, two pages
    assert counts["CopyObject"] == 1050
    assert counts["HeadObject"] <= 1  # the manifest-exists check, never per object
    assert counts["GetObject"] == 0
    others = sum(counts.values()) - counts["ListObjectVersions"] - counts["CopyObject"]
    assert others <= 4, counts
    # The copies under snapshots/ are not listed in full: with 3,150 of them (4,200 keys in all,
    # 5 pages in one plain listing) the fourth snapshot lists one page that runs into snapshots/,
    # one '/'-delimited listing that names state/, then state/'s two pages.
    take_snapshot(cfg, "second")
    take_snapshot(cfg, "third")
    with hold_lease(cfg, operation="count") as lease, count_requests() as again:
        take_snapshot(cfg, "fourth", lease=lease)
    assert again["ListObjectVersions"] == 4, again


assert SAMPLE_FILES  # the fixture data the tests above compare against


def test_a_delete_marker_under_the_snapshot_prefix_does_not_repeat_live_keys(server, make_repo):
    """moto sends a page's delete markers after its versions: the page's last entry is not its highest key.

    Resuming from that entry listed ~1,000 live keys twice, and the snapshot
    exited 0 with a manifest naming them twice (which verify passed and
    rollback then refused).
    """
    from concurrent.futures import ThreadPoolExecutor

    bucket = new_bucket(server)
    repo = make_repo(server, bucket)
    c = server.client(max_pool_connections=32)
    c.put_object(Bucket=bucket, Key="snapshots/old/x", Body=b"x")
    c.delete_object(Bucket=bucket, Key="snapshots/old/x")  # a delete marker, as a prune leaves
    keys = [f"state/skills/u{i % 5}/k{i:05d}.txt" for i in range(1200)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: c.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    r = repo.run("dr.snapshot", "--label=t", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["objects"] == len(keys)
    manifest = json.loads(c.get_object(Bucket=bucket, Key=row["manifest"])["Body"].read())
    listed = [o["key"] for o in manifest["objects"]]
    assert sorted(listed) == sorted(keys)
    v = repo.run("dr.verify", "--json")
    assert '"name": "snapshot"' in v.stdout and "Traceback" not in v.stderr
    snap = next(ch for ch in json.loads(v.stdout)["checks"] if ch["name"] == "snapshot")
    assert snap["ok"], snap


def test_a_listing_that_names_a_key_twice_is_refused_before_any_copy(server, bucket, make_repo, fault_proxy):
    """Whatever the cause (a store's paging, a proxy), a manifest naming a key twice is never committed."""
    import re

    repo = make_repo(server, bucket, endpoint_url=fault_proxy.url)
    repo.seed()

    def doubled(op: str, body: bytes) -> bytes:
        if op != "ListObjectVersions":
            return body
        m = re.search(rb"<Version>(?:(?!</Version>).)*?blob\.bin</Key>.*?</Version>", body, re.S)
        return body if m is None else body[: m.end()] + m.group(0) + body[m.end() :]

    fault_proxy.rewrite = doubled
    before = bucket_state(server, bucket)
    r = repo.run("dr.snapshot", "--label=t")
    assert_clean_refusal(r, "named 1 keys more than once", "state/skills/beta/blob.bin", "nothing was copied")
    assert bucket_state(server, bucket) == before
    assert repo.index_rows() == []
