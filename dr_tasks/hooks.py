"""Pre/post hooks around a task: shell commands through `c.run`, or `module:function` callables.

This is how `dr` chains into a host repo's own tasks, e.g.
`hooks: {post_snapshot: ["inv sync.push"], post_rollback: ["inv sync.pull"]}`.
A callable is called as `fn(c, result)` (`result` is None for pre hooks).

A command runs with the running interpreter's bin directory first on PATH, so
`inv ...` finds the virtualenv's `inv` under cron's `PATH=/usr/bin:/bin`. A
post hook runs after the operation committed: when one fails, the message
says what is committed and which hooks are left to run by hand, since running
the task again would repeat the operation.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import DrError

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class HookError(DrError):
    pass


def hook_path(path: str | None = None) -> str:
    """PATH for a hook command: the interpreter's bin directory first, then `path` (default: this process's)."""
    # Not resolved: a venv's python is a symlink into the base interpreter's
    # bin, which holds no `inv` of this venv.
    bin_dir = str(Path(sys.executable).parent) if sys.executable else ""
    rest = [p for p in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep) if p]
    return os.pathsep.join([bin_dir, *(p for p in rest if p != bin_dir)] if bin_dir else rest)


def run_hooks(c: Any, hooks: Mapping[str, tuple[str, ...]], phase: str, task: str, result: Any = None) -> None:
    """Run every `<phase>_<task>` hook in order; the first failure raises HookError."""
    entries = hooks.get(f"{phase}_{task}", ())
    for n, entry in enumerate(entries):
        try:
            _run_one(c, entry, f"hook {phase}_{task} {entry!r}", result)
        except HookError as err:
            if phase != "post":
                raise
            raise _after_commit(err, task, entries[n:], result) from None


def _run_one(c: Any, entry: str, where: str, result: Any) -> None:
    if _CALLABLE.match(entry):
        module_name, func_name = entry.split(":")
        try:
            fn = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as err:
            raise HookError(f"{where}: cannot import it ({err})", "check the module:function name") from None
        try:
            fn(c, result)
        except DrError as err:
            raise HookError(f"{where} failed: {err}") from None
        except Exception as err:  # a host's hook can raise anything; report it, do not crash
            raise HookError(f"{where} raised {type(err).__name__}: {err}") from None
    else:
        r = c.run(entry, warn=True, hide=False, pty=False, env=_command_env(c))
        if r is None or r.failed:
            code = getattr(r, "exited", "?")
            raise HookError(f"{where} exited {code}", "fix the hook command or remove it from dr.hooks")


def _command_env(c: Any) -> dict[str, str]:
    """The host's `run.env` (an `env=` given to `c.run` replaces it), with the hook PATH."""
    try:
        env = {str(k): str(v) for k, v in (c.config.run.env or {}).items()}
    except AttributeError:
        env = {}
    env["PATH"] = hook_path(env.get("PATH"))
    return env


def _committed(task: str, result: Any) -> str:
    """What the operation left done, in the operator's words, e.g. `snapshot <id> is committed`."""
    row = getattr(result, "row", None)
    if callable(row):
        row = row()
    if isinstance(row, Mapping) and row.get("id"):
        return f"{row.get('kind') or task} {row['id']} is committed (its row is in the index)"
    holding = getattr(result, "holding_dir", None)
    if isinstance(holding, str) and holding:
        return f"the restore into {holding} is complete"
    return f"dr.{task} itself completed"


def _after_commit(err: HookError, task: str, left: tuple[str, ...], result: Any) -> HookError:
    rerun = ", then ".join(f"`{e}`" for e in left)
    callables = " (a module:function entry is called as fn(c, result))" if any(_CALLABLE.match(e) for e in left) else ""
    return HookError(
        f"{err.message}; {_committed(task, result)}",
        f"do not run dr.{task} again; fix the hook, then run what is left of hooks.post_{task} yourself: "
        f"{rerun}{callables}",
    )
