from __future__ import annotations

import os
from pathlib import Path

import pytest

from dr_tasks import load_config
from dr_tasks.guard import Guard, GuardError


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    (tmp_path / "state" / "skills" / "a").mkdir(parents=True)
    (tmp_path / "state" / "skills" / "a" / "f.txt").write_text("x")
    (tmp_path / "_restore" / "a-20260101T000000Z").mkdir(parents=True)
    (tmp_path / "_restore" / "a-20260101T000000Z" / "f.txt").write_text("restored")
    (tmp_path / "secrets.env").write_text("k=v")
    return Guard(load_config({"bucket": "ok-bucket", "sync_deny": []}, tmp_path))


def test_allowed_path_gets_a_permit(guard: Guard):
    permit = guard.check_upload("state/skills/a/f.txt")
    assert permit.rel == "state/skills/a/f.txt" and permit.path.is_file()


def test_restore_dir_is_denied_even_when_config_forgets_it(guard: Guard):
    with pytest.raises(GuardError, match="SYNC_DENY"):
        guard.check_upload("_restore/a-20260101T000000Z/f.txt")
    assert not guard.restore_dir_denied()  # the config itself does not cover it


def test_symlink_into_restore_dir_is_denied(guard: Guard, tmp_path: Path):
    link = tmp_path / "state" / "skills" / "a" / "sneaky.txt"
    os.symlink(tmp_path / "_restore" / "a-20260101T000000Z" / "f.txt", link)
    with pytest.raises(GuardError, match="resolves to _restore"):
        guard.check_upload(link)
    dirlink = tmp_path / "state" / "linked"
    os.symlink(tmp_path / "_restore", dirlink)
    with pytest.raises(GuardError):
        guard.check_upload("state/linked/a-20260101T000000Z/f.txt")


def test_outside_allow_and_outside_root_are_refused(guard: Guard, tmp_path: Path):
    with pytest.raises(GuardError, match="SYNC_ALLOW"):
        guard.check_upload("secrets.env")
    with pytest.raises(GuardError, match="outside the repo root"):
        guard.check_upload(tmp_path.parent / "elsewhere.txt")
    with pytest.raises(GuardError, match="outside the repo root"):
        guard.check_upload("state/../../etc/passwd")


def test_configured_deny_applies(tmp_path: Path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "tmp.swp").write_text("x")
    g = Guard(load_config({"bucket": "ok-bucket", "sync_deny": ["*.swp", "_restore/**"]}, tmp_path))
    assert g.restore_dir_denied()
    with pytest.raises(GuardError):
        g.check_upload("state/tmp.swp")


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "a/../../b", "/abs/path", "a//b", "a/./b", "nul\x00byte", "", "a/", "a\\..\\b"],
)
def test_restore_keys_that_escape_are_refused(tmp_path: Path, key: str):
    assert Guard.key_problem(key)
    with pytest.raises(GuardError):
        Guard.safe_join(tmp_path, key)


def test_a_drive_letter_is_refused_on_windows_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dr_tasks.guard as guard

    monkeypatch.setattr(guard, "_WINDOWS", False)
    for key in ("c:x.txt", "odd/d:", "c:/windows"):
        assert Guard.key_problem(key) is None  # ordinary names on POSIX
    assert Guard.safe_join(tmp_path, "c:x.txt") == tmp_path / "c:x.txt"
    monkeypatch.setattr(guard, "_WINDOWS", True)
    assert Guard.key_problem("c:/windows") == "absolute path"


def test_safe_join_refuses_a_symlinked_parent(tmp_path: Path):
    base = tmp_path / "hold"
    base.mkdir()
    os.symlink(tmp_path, base / "up")
    with pytest.raises(GuardError, match="symlink"):
        Guard.safe_join(base, "up/x.txt")
    assert Guard.safe_join(base, "caf\u00e9/ok.txt") == base / "caf\u00e9" / "ok.txt"
