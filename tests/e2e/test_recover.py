"""`inv dr.recover`: the primary bucket lost, brought back from the backup in another region."""

from __future__ import annotations

import json

from dr_tasks.lease import LOCK_KEY
from tests.conftest import assert_clean_refusal, bucket_state, live_objects, new_bucket
from tests.e2e.test_backup import configure_backup
from tests.e2e.test_lock import lock_entries, plant_lease
from tests.support.faultproxy import FaultProxy, Rule


def wipe_bucket(server, bucket: str) -> None:
    c = server.client()
    for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        objs += [{"Key": d["Key"], "VersionId": d["VersionId"]} for d in page.get("DeleteMarkers", [])]
        if objs:
            c.delete_objects(Bucket=bucket, Delete={"Objects": objs, "Quiet": True})
    c.delete_bucket(Bucket=bucket)


def ours(objects: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in objects.items() if not k.startswith(".dr-tasks/")}


def test_lost_primary_comes_back_byte_for_byte_with_its_snapshots(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    repo.seed()
    configure_backup(repo, moto2)
    snap = json.loads(repo.run("dr.snapshot", "--label=before-loss", "--json").stdout)
    r = repo.run("dr.backup", "--json")
    assert r.returncode == 0, r.stderr
    before = ours(live_objects(server, bucket))
    assert f"snapshots/{snap['id']}.manifest.json" in before
    wipe_bucket(server, bucket)

    missing = repo.run("dr.recover")
    assert_clean_refusal(missing, "does not exist", "--create-bucket")
    plan = repo.run("dr.recover", "--create-bucket", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["apply"] is False and sorted(planned["to_copy"]) == sorted(before)
    assert bucket not in [b["Name"] for b in server.client().list_buckets()["Buckets"]]  # a dry run creates nothing

    done = repo.run("dr.recover", "--apply", "--create-bucket", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["created_bucket"] and result["copied"] == len(before)
    assert ours(live_objects(server, bucket)) == before
    assert server.client().get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    # the snapshot works again: roll back to it after a new bad write
    server.client().put_object(Bucket=bucket, Key="state/skills/alpha/a.txt", Body=b"bad day")
    rb = repo.run("dr.rollback", snap["id"], "--apply", "--confirm-label=before-loss")
    assert rb.returncode == 0, rb.stderr
    assert (
        live_objects(server, bucket, "state/skills/alpha/a.txt")["state/skills/alpha/a.txt"]
        == before["state/skills/alpha/a.txt"]
    )

    again = json.loads(repo.run("dr.recover", "--apply", "--json").stdout)
    assert again["copied"] == 0 and again["skipped"] == len(before)  # a re-run converges: nothing to copy


def test_dry_run_lists_and_changes_nothing(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    # Keys are shown as they are: rich read "[/]" as markup (a crash) and ":fire:" as an emoji.
    odd = ["state/notes/[/]closing.md", "state/notes/:fire:.md"]
    for key in odd:
        moto_server.client().put_object(Bucket=bucket, Key=key, Body=b"odd")
    configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    for key in ["state/skills/beta/blob.bin", *odd]:
        moto_server.client().delete_object(Bucket=bucket, Key=key)
    r = repo.run("dr.recover")
    assert r.returncode == 0, r.stderr
    assert "copy state/skills/beta/blob.bin" in r.stdout and "dry run: nothing was copied" in r.stdout
    for key in odd:
        assert f"  copy {key}\n" in r.stdout
    assert "state/skills/beta/blob.bin" not in live_objects(moto_server, bucket)


def test_apply_holds_the_primary_lease_and_waits_for_no_one(server, bucket, make_repo, moto2):
    # A backup (which mirrors the primary into the backup) or a rollback
    # running while recover writes would see, or change, a half-recovered
    # bucket: --apply takes the primary's lease like every other writer.
    repo = make_repo(server, bucket)
    repo.seed()
    configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    server.client().delete_object(Bucket=bucket, Key="state/skills/beta/blob.bin")
    ghost = plant_lease(server, bucket)
    before = bucket_state(server, bucket)
    r = repo.run("dr.recover", "--apply")
    assert_clean_refusal(r, "another dr operation is running: lease held by ghost@elsewhere pid 4242 for rollback")
    assert bucket_state(server, bucket) == before
    dry = repo.run("dr.recover")  # a dry run only reads: it needs no lease
    assert dry.returncode == 0 and "copy state/skills/beta/blob.bin" in dry.stdout

    server.client().delete_object(Bucket=bucket, Key=LOCK_KEY, VersionId=ghost)
    r = repo.run("dr.recover", "--apply", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["copied"] == 1
    assert "state/skills/beta/blob.bin" in live_objects(server, bucket)
    assert lock_entries(server, bucket) == []  # released, and no delete marker left behind


def test_without_a_backup_bucket_it_names_the_key(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    r = repo.run("dr.recover", "--apply")
    assert_clean_refusal(r, "dr.backup.bucket")
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_failed_object_exits_1_and_a_rerun_completes(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    files = repo.seed()
    with FaultProxy(moto2.endpoint) as proxy:
        backup_bucket = configure_backup(repo, moto2, endpoint_url=proxy.url)
        assert repo.run("dr.backup").returncode == 0
        wipe_bucket(moto_server, bucket)
        proxy.add(Rule(op="GetObject", key="beta/blob.bin", fault=403, times=-1))
        r = repo.run("dr.recover", "--apply", "--create-bucket")
        assert_clean_refusal(r, "state/skills/beta/blob.bin", "run the same command again")
        proxy.clear()
        r = repo.run("dr.recover", "--apply", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["copied"] == 1
    assert {k: v for k, v in live_objects(moto_server, bucket).items() if k in files} == files
    assert backup_bucket


def test_keys_that_survived_with_other_content_are_kept_unless_overwrite(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    files = repo.seed()
    configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    key = "state/skills/alpha/a.txt"
    moto_server.client().put_object(Bucket=bucket, Key=key, Body=b"written after the last backup")
    moto_server.client().delete_object(Bucket=bucket, Key="state/notes/readme.txt")

    plan = repo.run("dr.recover")
    assert plan.returncode == 0, plan.stderr
    assert f"keep {key} (differs from the backup)" in plan.stdout and "copy state/notes/readme.txt" in plan.stdout
    assert "--overwrite" in plan.stderr

    done = json.loads(repo.run("dr.recover", "--apply", "--json").stdout)
    assert done["differs"] == [key] and done["copied"] == 1  # only what was lost comes back
    assert live_objects(moto_server, bucket, key)[key] == b"written after the last backup"
    assert "state/notes/readme.txt" in live_objects(moto_server, bucket, "state/notes/")

    forced = json.loads(repo.run("dr.recover", "--apply", "--overwrite", "--json").stdout)
    assert forced["differs"] == [] and forced["copied"] == 1
    assert live_objects(moto_server, bucket, key)[key] == files[key]


def test_pins_come_back_with_a_lost_primary_so_prune_still_honours_them(moto_server, make_repo, moto2):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket)
    repo.seed()
    first = json.loads(repo.run("dr.snapshot", "--label=pinned", "--json").stdout)
    assert repo.run("dr.pin", first["id"]).returncode == 0
    configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    wipe_bucket(moto_server, bucket)
    repo.index_path.write_bytes(b"")  # the laptop went too

    done = json.loads(repo.run("dr.recover", "--apply", "--create-bucket", "--json").stdout)
    assert f".dr-tasks/pins/{first['id']}.json" in done["to_copy"]
    assert repo.run("dr.reindex", "--apply").returncode == 0
    repo.run("dr.snapshot", "--label=newer")
    r = repo.run("dr.prune", "--keep-last=1", "--json")
    assert first["id"] in {d["id"] for d in json.loads(r.stdout)["keep"]}


def test_keys_deleted_before_the_last_backup_stay_deleted_unless_asked(server, bucket, make_repo, moto2):
    repo = make_repo(server, bucket)
    files = repo.seed()
    configure_backup(repo, moto2)
    assert repo.run("dr.backup").returncode == 0
    gone = "state/notes/readme.txt"
    server.client().delete_object(Bucket=bucket, Key=gone)
    assert repo.run("dr.backup").returncode == 0  # no --mirror: the backup keeps its copy
    wipe_bucket(server, bucket)

    plan = repo.run("dr.recover", "--create-bucket")
    assert plan.returncode == 0, plan.stderr
    assert f"skip {gone} (deleted in the primary before the last backup)" in plan.stdout
    assert "--include-deleted" in plan.stderr
    done = json.loads(repo.run("dr.recover", "--apply", "--create-bucket", "--json").stdout)
    assert done["deleted"] == [gone]
    assert ours(live_objects(server, bucket)) == {k: v for k, v in files.items() if k != gone}

    more = json.loads(repo.run("dr.recover", "--apply", "--include-deleted", "--json").stdout)
    assert more["deleted"] == [] and more["copied"] == 1
    assert live_objects(server, bucket, gone)[gone] == files[gone]
