"""A `--mirror` deletes at most a share of what the backup holds for the repo without --allow-mass-delete.

The primary is the `server` fixture (moto and Ceph RGW), the backup region a
second moto server (`moto2`); every run is the real `inv` subprocess.
"""

from __future__ import annotations

from tests.conftest import assert_clean_refusal, bucket_state, new_bucket
from tests.e2e.test_backup import backup_json, backup_objects, configure_backup, primary_objects, seeded


def test_a_mirror_that_would_delete_most_of_the_backup_is_refused_with_counts(server, make_repo, moto2):
    repo = make_repo(server, new_bucket(server))
    files = seeded(repo)
    cold = configure_backup(repo, moto2)
    first = backup_json(repo)
    total = first["copied"]
    # All but one key is gone from the primary: one survivor used to let the mirror delete the rest.
    c = server.client()
    for key in primary_objects(repo):
        if key != "state/notes/readme.txt":
            c.delete_object(Bucket=repo.bucket, Key=key)
    assert len(primary_objects(repo)) == 1
    before_cold, before_index = bucket_state(moto2, cold), repo.index_bytes()
    for args in (("--mirror",), ("--mirror", "--apply")):
        r = repo.run("dr.backup", *args)
        assert_clean_refusal(r, f"would delete {total - 1} of the {total} objects", "--allow-mass-delete")
        assert "still lists only 1 of them" in r.stderr.strip().splitlines()[0]
        assert bucket_state(moto2, cold) == before_cold and repo.index_bytes() == before_index

    allowed = backup_json(repo, "--mirror", "--apply", "--allow-mass-delete")
    assert allowed["deleted"] == total - 1
    assert backup_objects(moto2, cold) == {"state/notes/readme.txt": files["state/notes/readme.txt"]}


def test_a_mirror_of_a_small_share_needs_no_flag(server, make_repo, moto2):
    repo = make_repo(server, new_bucket(server))
    seeded(repo)
    cold = configure_backup(repo, moto2)
    backup_json(repo)
    server.client().delete_object(Bucket=repo.bucket, Key="state/notes/readme.txt")
    server.client().delete_object(Bucket=repo.bucket, Key="state/skills/alpha/a.txt")
    done = backup_json(repo, "--mirror", "--apply")
    assert done["deleted"] == 2
    assert backup_objects(moto2, cold) == primary_objects(repo)
