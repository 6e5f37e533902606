"""A backup is bound to its source: two repos sharing one cold bucket, and a mirror's share of deletes.

Two primary buckets on the `server` fixture (moto and Ceph RGW) and one cold
bucket on a second moto server (`moto2`), every run the real `inv` subprocess.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import HostRepo, Server, assert_clean_refusal, bucket_state, live_objects, new_bucket
from tests.e2e.test_backup import STATE_KEY, backup_json, backup_objects, configure_backup, primary_objects
from tests.e2e.test_recover import wipe_bucket

A_FILES = {
    "state/config.json": b'{"repo": "a"}\n',
    "state/skills/alpha/a.txt": b"repo a's alpha\n",
    "state/skills/alpha/b.txt": b"repo a's beta\n",
    "state/notes/a.md": b"# a\n",
}
B_FILES = {
    "state/config.json": b'{"repo": "b"}\n',
    "state/skills/alpha/a.txt": b"repo b's alpha, other bytes\n",
    "state/notes/b.md": b"# b\n",
}


def two_repos(server: Server, make_repo: Any, moto2: Server) -> tuple[HostRepo, HostRepo, str]:
    """Repo A and repo B, each with its own primary bucket, both backing up to one cold bucket, default prefixes."""
    a = make_repo(server, new_bucket(server))
    b = make_repo(server, new_bucket(server))
    a.seed(A_FILES)
    b.seed(B_FILES)
    cold = configure_backup(a, moto2)
    configure_backup(b, moto2, bucket=cold)
    return a, b, cold


def one_line(stderr: str) -> str:
    """The refusal's message line (the hint follows on its own `fix:` line)."""
    return stderr.strip().splitlines()[0]


# ---------------------------------------------------------------------- backup
def test_a_second_repo_backing_up_into_the_same_cold_prefix_is_refused(server, make_repo, moto2):
    a, b, cold = two_repos(server, make_repo, moto2)
    backup_json(a)
    held = backup_objects(moto2, cold)
    assert held == primary_objects(a)

    before_cold, before_index = bucket_state(moto2, cold), b.index_bytes()
    for args in ((), ("--mirror",), ("--mirror", "--apply")):
        r = b.run("dr.backup", *args)
        assert_clean_refusal(r, f"s3://{a.bucket}/", f"s3://{b.bucket}/", "dr.backup.prefix", "nothing was copied")
        assert f"the backup s3://{cold}/ holds a backup made from s3://{a.bucket}/" in one_line(r.stderr)
        assert bucket_state(moto2, cold) == before_cold  # A's cold copies and state untouched
        assert b.index_bytes() == before_index  # no row for B

    # The fix the refusal names: B gets its own prefix, and both backups live side by side.
    configure_backup(b, moto2, bucket=cold, prefix="repo-b/")
    assert backup_json(b)["copied"] == len(B_FILES)
    assert backup_objects(moto2, cold, "repo-b/") == primary_objects(b)
    again = backup_json(a, "--mirror", "--apply")  # A's scope (prefix "") covers repo-b/: never deleted
    assert (again["copied"], again["deleted"]) == (0, 0)
    assert backup_objects(moto2, cold, "repo-b/") == primary_objects(b)
    assert {k: v for k, v in backup_objects(moto2, cold).items() if not k.startswith("repo-b/")} == held


def test_objects_with_no_backup_state_at_this_repos_keys_are_refused_unless_adopted(server, make_repo, moto2):
    a, _, cold = two_repos(server, make_repo, moto2)
    # Another tool's copy (or a backup whose state is gone) sits where A's backup would write.
    moto2.client().put_object(Bucket=cold, Key="state/config.json", Body=b"someone else's")
    before = bucket_state(moto2, cold)
    r = a.run("dr.backup")
    assert_clean_refusal(r, "no readable backup state", "dr.backup.prefix", "--adopt-backup")
    assert "1 objects at the keys this repo's backup uses" in one_line(r.stderr)
    assert bucket_state(moto2, cold) == before and a.index_rows() == []

    adopted = backup_json(a, "--adopt-backup")
    assert adopted["copied"] == len(A_FILES)
    assert backup_objects(moto2, cold) == primary_objects(a)
    assert backup_json(a)["copied"] == 0  # bound to A from now on: no flag needed


def test_a_mirror_deletes_only_keys_this_backup_recorded(server, make_repo, moto2):
    a, _, cold = two_repos(server, make_repo, moto2)
    backup_json(a)
    # In A's scope (prefix ""), never written by A's backup: someone else's.
    moto2.client().put_object(Bucket=cold, Key="state/notes/not-ours.md", Body=b"kept")
    server.client().delete_object(Bucket=a.bucket, Key="state/notes/a.md")
    r = a.run("dr.backup", "--mirror", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["deleted"] == 1
    assert "1 objects at the destination that the primary does not list were not deleted" in r.stderr
    cold_now = live_objects(moto2, cold)
    assert cold_now["state/notes/not-ours.md"] == b"kept" and "state/notes/a.md" not in cold_now
    # Kept, but the primary does not have it: a recover leaves it out unless --include-deleted.
    state = json.loads(moto2.client().get_object(Bucket=cold, Key=STATE_KEY)["Body"].read())
    assert state["gone"] == ["state/notes/not-ours.md"]


def test_a_repo_whose_primary_moved_continues_its_own_backup(server, make_repo, moto2):
    # The index records backing up from the old bucket into this destination: the same repo, moved.
    a, _, cold = two_repos(server, make_repo, moto2)
    backup_json(a)
    old = a.bucket
    new = new_bucket(server)
    for key, body in A_FILES.items():
        server.client().put_object(Bucket=new, Key=key, Body=body)
    a.write_config(bucket=new)
    a.bucket = new
    r = a.run("dr.backup", "--json")
    assert r.returncode == 0, r.stderr
    assert f"was made from s3://{old}/" in r.stderr and f"continues from s3://{new}/" in r.stderr
    state = json.loads(moto2.client().get_object(Bucket=cold, Key=STATE_KEY)["Body"].read())
    assert state["origin"]["bucket"] == new
    assert a.run("dr.freshness").returncode == 0


# ---------------------------------------------------------------------- recover
def test_recover_refuses_another_sources_backup_unless_told(server, make_repo, moto2):
    a, b, _cold = two_repos(server, make_repo, moto2)
    backup_json(a)
    b_before = bucket_state(server, b.bucket)
    for args in ((), ("--apply",), ("--apply", "--overwrite")):
        r = b.run("dr.recover", *args)
        assert_clean_refusal(r, f"s3://{a.bucket}/", f"s3://{b.bucket}/", "--from-other-source", "nothing was copied")
        assert bucket_state(server, b.bucket) == b_before  # B's config.json is still B's
    # a primary that does not exist yet is not created for a refused recover
    b.write_config(bucket="t-not-created-" + b.bucket[2:14])
    r = b.run("dr.recover", "--apply", "--create-bucket")
    assert_clean_refusal(r, "--from-other-source")
    assert b.config["bucket"] not in [x["Name"] for x in server.client().list_buckets()["Buckets"]]

    b.write_config(bucket=b.bucket)
    told = b.run("dr.recover", "--from-other-source", "--json")
    assert told.returncode == 0, told.stderr
    assert "state/config.json" in json.loads(told.stdout)["differs"]


def test_recover_into_a_new_bucket_is_this_repos_backup_and_freshness_counts_only_its_source(server, make_repo, moto2):
    a, _, _cold = two_repos(server, make_repo, moto2)
    backup_json(a)
    assert a.run("dr.freshness").returncode == 0
    wipe_bucket(server, a.bucket)
    new = "t-new-" + a.bucket[2:16]
    old = a.bucket
    a.write_config(bucket=new)
    a.bucket = new
    done = a.run("dr.recover", "--apply", "--create-bucket", "--json")
    assert done.returncode == 0, done.stderr
    assert f"made from s3://{old}/" in done.stderr
    assert {k: v for k, v in live_objects(server, new).items() if k in A_FILES} == A_FILES
    # No backup has been read from the new primary yet: not fresh, and it says why.
    fresh = a.run("dr.freshness")
    assert_clean_refusal(fresh, "checks failed: backup")  # each failure once: its detail is on stdout
    assert f"from this repo's primary s3://{new}/" in fresh.stdout and f"was read from s3://{old}/" in fresh.stdout
    backup_json(a)
    assert a.run("dr.freshness").returncode == 0


def test_freshness_ignores_rows_of_another_source_to_the_same_destination(server, make_repo, moto2):
    # A's index came back from a cold copy that held B's index: B's rows say nothing about A's backup.
    a, b, _cold = two_repos(server, make_repo, moto2)
    backup_json(b)
    a.index_path.write_bytes(b.index_bytes())
    r = a.run("dr.freshness")
    assert_clean_refusal(r, "checks failed: backup")  # each failure once: its detail is on stdout
    assert "no complete cross-region-backup row" in r.stdout and f"was read from s3://{b.bucket}/" in r.stdout


def test_a_state_written_before_the_origin_was_recorded_binds_by_server_and_bucket(server, make_repo, moto2):
    # Older states name only `<endpoint>/<bucket>`: that still tells this repo's backup from another's.
    a, b, cold = two_repos(server, make_repo, moto2)
    backup_json(a)
    c2 = moto2.client()
    state = json.loads(c2.get_object(Bucket=cold, Key=STATE_KEY)["Body"].read())
    del state["origin"]
    c2.put_object(Bucket=cold, Key=STATE_KEY, Body=json.dumps(state).encode())
    a.index_path.write_bytes(b"")  # not the index: the state alone decides
    assert backup_json(a)["copied"] == 0
    before = bucket_state(moto2, cold)
    assert_clean_refusal(b.run("dr.backup"), f"a backup made from s3://{a.bucket}/", "dr.backup.prefix")
    assert bucket_state(moto2, cold) == before
