"""`holder_gone`: when a lease body's pid provably names no running holder, read from a fake /proc."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dr_tasks.lease import identity as lock


def stat_line(pid: int, comm: str, state: str, start: int) -> str:
    # Fields 3.. after "(comm)": state, then 18 more before starttime (field 22).
    rest = ["0"] * 18
    return f"{pid} ({comm}) {state} {' '.join(rest)} {start} 0 0\n"


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """This process on a fake machine: machine id, boot id, pid namespace, and our own stat."""
    (tmp_path / "machine-id").write_text("m" * 32 + "\n")
    (tmp_path / "boot_id").write_text("b-1\n")
    (tmp_path / "ns").symlink_to("pid:[4026531836]")
    proc = tmp_path / "proc"
    proc.mkdir()
    monkeypatch.setattr(lock, "MACHINE_ID_FILES", (str(tmp_path / "machine-id"), str(tmp_path / "no-dbus")))
    monkeypatch.setattr(lock, "BOOT_ID_FILE", str(tmp_path / "boot_id"))
    monkeypatch.setattr(lock, "PID_NS_LINK", str(tmp_path / "ns"))
    monkeypatch.setattr(lock, "PROC_DIR", str(proc))
    monkeypatch.setattr(lock.os, "getpid", lambda: 100)
    (proc / "100").mkdir()
    (proc / "self").symlink_to("100")
    (proc / "100" / "stat").write_text(stat_line(100, "inv", "R", 5000))
    return {"proc": proc, "tmp": tmp_path}


def put_process(machine: dict[str, Any], pid: int, comm: str, state: str, start: int) -> None:
    d = machine["proc"] / str(pid)
    d.mkdir(exist_ok=True)
    (d / "stat").write_text(stat_line(pid, comm, state, start))


def test_identity_is_read_and_recorded(machine):
    assert lock.host_identity() == {
        "machine_id": "m" * 32,
        "boot_id": "b-1",
        "pid_ns": "pid:[4026531836]",
        "pid_start": 5000,
    }


def test_a_pid_that_is_gone_a_zombie_or_another_process_is_gone(machine):
    body = {**lock.host_identity(), "pid_start": 7000}
    assert "pid 200 is not running on this machine" in (lock.holder_gone(body, 200) or "")
    put_process(machine, 200, "inv", "Z", 7000)
    assert "pid 200 has exited" in (lock.holder_gone(body, 200) or "")
    # A command name with spaces and parentheses does not shift the fields.
    put_process(machine, 200, "a) b (c", "S", 7001)
    assert "is another process now" in (lock.holder_gone(body, 200) or "")
    put_process(machine, 200, "a) b (c", "S", 7000)
    assert lock.holder_gone(body, 200) is None  # the holder itself, running


@pytest.mark.parametrize(
    "change",
    [
        {"machine_id": "x" * 32},
        {"boot_id": "b-2"},
        {"pid_ns": "pid:[1]"},
        {"pid_start": None},
        {"machine_id": None, "boot_id": None, "pid_ns": None, "pid_start": None},
    ],
)
def test_anything_short_of_a_full_match_proves_nothing(machine, change):
    body = {**lock.host_identity(), "pid_start": 7000, **change}
    assert lock.holder_gone(body, 200) is None  # pid 200 does not exist here, yet nothing is proven


def test_without_a_machine_id_the_boot_id_and_namespace_still_decide(machine, monkeypatch):
    monkeypatch.setattr(lock, "MACHINE_ID_FILES", (str(machine["tmp"] / "none"),))
    body = {**lock.host_identity(), "pid_start": 7000}
    assert body["machine_id"] is None
    assert lock.holder_gone(body, 200) is not None
    assert lock.holder_gone({**body, "machine_id": "m" * 32}, 200) is None


def test_no_proc_no_proof(machine, monkeypatch):
    body = {**lock.host_identity(), "pid_start": 7000}
    monkeypatch.setattr(lock, "BOOT_ID_FILE", str(machine["tmp"] / "missing"))
    assert lock.holder_gone({**body, "boot_id": None}, 200) is None


def test_a_proc_of_another_pid_namespace_proves_nothing(machine):
    body = {**lock.host_identity(), "pid_start": 7000}
    (machine["proc"] / "self").unlink()
    (machine["proc"] / "self").symlink_to("4321")  # /proc counts pids in another namespace than ours
    assert lock.host_identity()["pid_ns"] is None
    assert lock.holder_gone(body, 200) is None
