"""Whose pid a lease body names, and whether that process is provably gone.

A lease left by a process that died (kill -9, power) is taken over at once
only when its holder is provably not running: the same machine, boot and pid
namespace as ours, and its pid gone, a zombie, or another process now. A
hostname proves nothing (containers share them).
"""

from __future__ import annotations

import getpass
import os
from typing import Any


def _owner() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): getuser raises KeyError or OSError
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, it is someone else's
        return True
    return True


# Where this machine's identity is read from (module-level so a test can point them elsewhere).
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
PID_NS_LINK = "/proc/self/ns/pid"
PROC_DIR = "/proc"


def _first_line(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            line = f.readline().strip()
    except (OSError, ValueError):
        return None
    return line or None


def _proc_start(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks since boot, state letter) of `pid`, or None when no such process."""
    try:
        with open(f"{PROC_DIR}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19]), fields[0].decode("ascii", "replace")
    except (IndexError, ValueError):
        return None


def host_identity() -> dict[str, Any]:
    """What makes a pid in a lease body comparable with ours: machine, boot, pid namespace, process start.

    A hostname is no identity (containers share them), so only a body whose
    machine id, boot id and pid namespace all equal ours is judged by its pid;
    the start time tells a reused pid from the holder. A machine without
    /etc/machine-id (minimal containers) falls back to dbus's copy, else
    records none: the boot id, random per kernel boot, still tells kernels
    apart, and two bodies without a machine id match only on it.
    """
    machine_id = next((m for m in map(_first_line, MACHINE_ID_FILES) if m), None)
    try:
        pid_ns: str | None = os.readlink(PID_NS_LINK)
        if os.readlink(f"{PROC_DIR}/self") != str(os.getpid()):
            # This /proc was mounted for another pid namespace (unshare without
            # a remount): its pids are not ours, so they prove nothing.
            pid_ns = None
    except OSError:
        pid_ns = None
    start = _proc_start(os.getpid())
    return {
        "machine_id": machine_id,
        "boot_id": _first_line(BOOT_ID_FILE),
        "pid_ns": pid_ns,
        "pid_start": start[0] if start else None,
    }


def holder_gone(info: dict[str, Any], pid: int | None) -> str | None:
    """Why the holder of a lease body is provably not running, or None when that cannot be proven.

    Proof needs this machine, this boot and this pid namespace, all three
    recorded in the body and equal to ours; then the pid is gone, a zombie,
    or a process that started at another time than the holder.
    """
    if pid is None:
        return None
    ours = host_identity()
    if not ours["boot_id"] or not ours["pid_ns"]:
        return None  # no /proc here: nothing to compare with
    for name in ("machine_id", "boot_id", "pid_ns"):
        if info.get(name) != ours[name]:
            return None
    started = info.get("pid_start")
    if not isinstance(started, int) or isinstance(started, bool):
        return None
    now = _proc_start(pid)
    where = f"this machine (boot {str(ours['boot_id'])[:8]}, same pid namespace)"
    if now is None:
        return f"pid {pid} is not running on {where}"
    if now[1] in ("Z", "X"):
        return f"pid {pid} has exited on {where}"
    if now[0] != started:
        return f"pid {pid} on {where} is another process now (the holder's has exited)"
    return None
