"""Pre/post hooks around a task: shell commands through `c.run`, or `module:function` callables.

This is how `dr` chains into a host repo's own tasks, e.g.
`hooks: {post_snapshot: ["inv sync.push"], post_rollback: ["inv sync.pull"]}`.
A callable is called as `fn(c, result)` (`result` is None for pre hooks).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from .errors import DrError

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class HookError(DrError):
    pass


def run_hooks(c: Any, hooks: Mapping[str, tuple[str, ...]], phase: str, task: str, result: Any = None) -> None:
    """Run every `<phase>_<task>` hook in order; the first failure raises HookError."""
    for entry in hooks.get(f"{phase}_{task}", ()):
        where = f"hook {phase}_{task} {entry!r}"
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
            r = c.run(entry, warn=True, hide=False, pty=False)
            if r is None or r.failed:
                code = getattr(r, "exited", "?")
                raise HookError(f"{where} exited {code}", "fix the hook command or remove it from dr.hooks")
