"""`dr.verify` and `dr.restore` read .gitignore by one rule: they agree on whether the holding dir is ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr_tasks import load_config
from dr_tasks.errors import DrError
from dr_tasks.ops.restore.scope import check_restore_dir as _check_restore_dir
from dr_tasks.ops.verify import check_restore_dir

CASES = {
    "root-dir": ({".gitignore": "_restore/\n"}, True),
    "root-anchored": ({".gitignore": "/_restore/\n"}, True),
    "nothing": ({".gitignore": "*.pyc\n"}, False),
    # A .gitignore of its own inside the holding dir: git ignores everything in it.
    "nested": ({"_restore/.gitignore": "*\n"}, True),
    "exclude": ({".git/info/exclude": "_restore/\n"}, True),
    # .gitignore outranks .git/info/exclude in git: this line un-ignores the holding dir.
    "negated-over-exclude": ({".git/info/exclude": "_restore/\n", ".gitignore": "!_restore/\n"}, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_and_restore_agree_on_whether_git_ignores_the_holding_dir(tmp_path: Path, case: str) -> None:
    files, ignored = CASES[case]
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    cfg = load_config({"bucket": "bkt"}, tmp_path)
    try:
        _check_restore_dir(cfg, "skills-20260415T180000Z")
        restore_ok = True
    except DrError as err:
        assert "not ignored by git" in str(err)
        restore_ok = False
    assert (check_restore_dir(cfg).ok, restore_ok) == (ignored, ignored)
