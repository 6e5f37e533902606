"""What every task shares: config from `c.config.dr`, hooks, and the exit codes (README: "Exit codes").

DrError -> 1, SIGINT/SIGTERM -> 130/143, stdout closed by its reader -> 141;
every message names commands as the user calls them here (`render.commands`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from invoke import Context, Task, task
from invoke.config import DataProxy
from invoke.exceptions import Exit

from .. import config as config_mod
from .. import render
from ..config import DrConfig
from ..errors import DrError
from ..hooks import run_hooks
from ..internals import caching_own_bytecode, called_as, freeze_heap_at_exit, project_prefix
from ..interrupt import Interrupted, signals_raise

F = TypeVar("F", bound=Callable[..., Any])


def _plain(value: Any) -> Any:
    """Invoke's DataProxy -> plain dicts and lists."""
    if isinstance(value, (Mapping, DataProxy)):
        proxy: Any = value
        return {k: _plain(proxy[k]) for k in proxy}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def raw_config(c: Context) -> dict[str, Any]:
    return config_mod.from_invoke(_plain(c.config.get("dr") or {}), os.environ)


def project_dir(c: Context) -> Path:
    prefix = project_prefix(c.config)
    return Path(prefix) if prefix else Path.cwd()


def load_config(c: Context, **overrides: Any) -> DrConfig:
    return config_mod.load(raw_config(c), project_dir(c), **overrides)


def _rows_appended() -> list[str]:
    """The index rows this process has appended so far.

    Read from the index module only once something loaded it: a task that
    writes no row (restore, list, verify) then never pays for the index and
    its typed rows at start-up.
    """
    index = sys.modules.get(f"{__package__.rpartition('.')[0]}.index")
    return index.APPENDED if index is not None else []


class DrTask(Task):
    """Invoke's Task, plus `-n` for `--dry-run` (our tasks turn automatic short flags off)."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name == "dry_run" and "n" not in taken_names:
            opts["names"].append("n")
        return opts


# What a task does under Invoke's dry mode (`inv --dry`, `run.dry`), which
# promises that nothing is run: "apply" tasks show their plan (`apply` is
# turned off), "writes" tasks refuse; tasks without `writes` only read.
Writes = Callable[[dict[str, Any]], bool]


def invoke_dry(c: Context) -> bool:
    run = c.config.get("run") if hasattr(c, "config") else None
    return bool(run and run.get("dry"))


def _help_as_a_value(name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    """Refuse `--help`/`-h` that Invoke handed a positional argument as its value.

    Invoke fills a task's pending positional with the next word, a flag's
    spelling included, so `inv dr.snapshot --help` would be a snapshot
    labelled "--help" (refused as a label, but not the help that was asked for).
    """
    for value in (*args, *kw.values()):
        if value in ("--help", "-h"):
            raise DrError(
                f"{value} was read as an argument's value, not as a request for help",
                f"for this task's help run `{render.help_command(name)}`",
            )


def _dry_mode(c: Context, name: str, writes: str | Writes | None, kw: dict[str, Any]) -> None:
    """Plan instead of apply under --dry or --dry-run; refuse a task that cannot help writing."""
    dry = invoke_dry(c)
    label = render.task_label(name)
    if writes == "apply":
        if kw.get("dry_run") and kw.get("apply"):
            render.note([f"{label}: --dry-run wins over --apply: this is the plan, nothing is written"])
            kw["apply"] = False
        elif dry and kw.get("apply"):
            render.note([f"{label}: Invoke's dry mode (--dry) is on: this is the plan, nothing is written"])
            kw["apply"] = False
    elif dry and writes is not None and (writes == "always" or (callable(writes) and writes(kw))):
        raise DrError(
            f"Invoke's dry mode (--dry) is on and {label} writes to the bucket or the index: nothing was done",
            "run it without --dry to do it (`inv --dry` promises that nothing runs)",
        )


def dr_task(*args: Any, writes: str | Writes | None = None, **kwargs: Any) -> Callable[[F], Any]:
    """`@task` that turns a DrError into a one-line message and exit code 1, never a traceback.

    `writes`: "apply" (the task's `--apply` makes it write; `--dry-run`/`-n`
    and Invoke's --dry turn that off), "always", or a predicate on the flags
    (both refused under Invoke's --dry); None for a task that only reads.
    """

    def decorate(fn: F) -> Any:
        name = fn.__name__.rstrip("_").replace("_", "-")

        @functools.wraps(fn)
        def wrapper(c: Context, *a: Any, **kw: Any) -> Any:
            freeze_heap_at_exit()
            render.called_as(called_as(wrapper))
            label = render.task_label(name)
            rows_before = len(_rows_appended())
            try:
                _help_as_a_value(name, a, kw)
                _dry_mode(c, name, writes, kw)
                # The operation's modules load here, lazily: let them keep their .pyc.
                with caching_own_bytecode(), signals_raise():
                    result = fn(c, *a, **kw)
            except Interrupted as sig:
                written = _rows_appended()[rows_before:]
                notes = sig.notes or [
                    f"it had written {', '.join(written)} to the index" if written else "no index row was written"
                ]
                raise Exit(
                    render.commands(f"{label}: interrupted by {sig.name}: " + "; ".join(notes)), code=sig.exit_code
                ) from None
            except DrError as err:
                raise Exit(render.commands(f"{label}: {err}"), code=1) from None
            except Exit as err:
                # A task's own verdict (a failed check, a partial run), named as it was called.
                message = err.message
                if message and message.startswith(f"dr.{name}: "):
                    message = label + message[len(f"dr.{name}") :]
                raise Exit(render.commands(message) if message else message, code=err.code) from None
            except BrokenPipeError:
                # Written past render (a hook's print): the same quiet end.
                render.stdout_gone()
                raise Exit(code=render.STDOUT_CLOSED) from None
            except OSError as err:
                # The local disk said no (full, read-only, permissions): the
                # operator can act on that without a traceback.
                where = f" ({err.filename})" if err.filename else ""
                raise Exit(
                    f"{label}: {err.strerror or err}{where}\n"
                    "  fix: check the disk and permissions under dr.root, then run again",
                    code=1,
                ) from None
            if render.stdout_closed():
                raise Exit(code=render.STDOUT_CLOSED)
            return result

        kwargs.setdefault("klass", DrTask)
        return task(*args, **kwargs)(wrapper)

    return decorate


def hooks(c: Context, cfg: DrConfig, phase: str, name: str, result: Any = None) -> None:
    run_hooks(c, cfg.hooks, phase, name, result)
