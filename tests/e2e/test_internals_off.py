"""With DR_TASKS_INTERNALS=off (every trick of dr_tasks/internals/ skipped) the tasks still do their job."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from tests.conftest import SAMPLE_FILES, local_tree, new_bucket

OFF = {"DR_TASKS_INTERNALS": "off"}


def test_snapshot_list_restore_and_verify_with_the_internals_switched_off(moto_server, make_repo):
    repo = make_repo(moto_server, new_bucket(moto_server))
    repo.seed()
    r = repo.run("dr.versioning", "--enable", env=OFF)
    assert r.returncode == 0, r.stderr
    r = repo.run("dr.snapshot", "--label=off", "--json", env=OFF)
    assert r.returncode == 0, r.stderr
    time.sleep(1.1)
    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = repo.run("dr.list", "--json", env=OFF)
    assert r.returncode == 0 and "off" in r.stdout, r.stderr
    # The positional UNIT stays optional: the contract's `--all TS` form.
    r = repo.run("dr.restore", "--all", ts, "--json", env=OFF)
    assert r.returncode == 0, r.stderr
    holding = repo.path / json.loads(r.stdout)["holding_dir"]
    assert local_tree(holding) == SAMPLE_FILES
    r = repo.run("dr.verify", env=OFF)
    assert "FAIL  restore-dir" not in r.stdout and "FAIL  snapshot" not in r.stdout, r.stdout + r.stderr
