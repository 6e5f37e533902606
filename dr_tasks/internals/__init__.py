"""Every place dr-tasks leans on another library's private internals or on interpreter state.

This package is that place: Invoke's and the interpreter's here, botocore's
in `boto.py`, the list of what is relied on and the off switch in `relied.py`.

Invoke, botocore and the interpreter are used through their public surface
everywhere else. The exceptions live here, each with why it pays and what
happens without it, so that a library upgrade has one file to check and
`tests/unit/test_internals.py` fails (rather than a user's run) when an
internal we rely on moves. `RELIED_ON` lists them; `missing()` reports the
ones that are gone.

The off switch: `DR_TASKS_INTERNALS=off` (also `0`, `false`, `no`) skips
every trick below. dr-tasks stays correct without them, only slower (model
loading, listing parses, the garbage collector) or plainer (Invoke's own
config errors are tracebacks again). The one exception is `ScopedPositional`:
it is the contract's `dr.restore --all TS` form, built on Invoke's public
`Argument` class, and stays on.

Nothing here runs at import: importing `dr_tasks` changes nothing in the
host's Invoke or interpreter. Invoke's config errors become one-line
messages (and its --list into a closed pipe a quiet exit) only in the `dr`
program and in a host `tasks.py` that calls `dr_tasks.friendly_config_errors()`
itself.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from invoke.parser import Argument

from .relied import ENV as ENV
from .relied import RELIED_ON as RELIED_ON
from .relied import _all_present, enabled
from .relied import missing as missing

# ---------------------------------------------------------------------- Invoke's own config errors
# Invoke reads invoke.yaml, merges it over our declared defaults and casts
# INVOKE_DR_* variables before any task runs, and its failures there are
# tracebacks: a YAML syntax error, `backup: x` where a mapping is declared,
# `INVOKE_DR_CONCURRENCY=many`. The guards below turn exactly those failures
# into Invoke's `Exit`, which it prints as one line with exit code 1. They
# rebind Invoke functions for the whole process, so only the `dr` program
# installs them, and a host's tasks.py that asks (`friendly_config_errors()`).
_merge_depth = threading.local()

_INVOKE_CONFIG = [n for n in RELIED_ON if n.startswith(("invoke.config", "invoke.env"))]


def _conflict(base: Any, updates: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], Any] | None:
    """The first key where one side is a mapping and the other is not, with the declared value."""
    if not isinstance(base, dict) or not isinstance(updates, dict):
        return None
    for key, value in updates.items():
        if key in base:
            if isinstance(value, dict) != isinstance(base[key], dict):
                return (*path, str(key)), base[key]
            found = _conflict(base[key], value, (*path, str(key)))
            if found:
                return found
    return None


def friendly_invoke_config_errors() -> None:
    """Make Invoke's config loading fail with a one-line message instead of a traceback. Idempotent.

    Also makes Invoke's own --list / --help into a closed pipe a quiet exit
    141 (`_quiet_closed_stdout`). Call it before Invoke loads the config: in a
    host's tasks.py, at its top.
    """
    import invoke.config as ic
    from invoke.exceptions import Exit

    if not enabled() or getattr(ic, "_dr_tasks_guarded", False):
        return
    if not all(RELIED_ON[n]() for n in _INVOKE_CONFIG):
        # An Invoke whose internals moved: keep its own (traceback) errors
        # rather than break every task at import.
        return
    ic._dr_tasks_guarded = True  # type: ignore[attr-defined]

    merge = ic.merge_dicts

    def merge_dicts(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
        # Only the outermost call reports, so the key path is complete.
        if getattr(_merge_depth, "n", 0):
            return merge(base, updates)
        _merge_depth.n = 1
        try:
            return merge(base, updates)
        except ic.AmbiguousMergeError:
            found = _conflict(base, updates)
            name = ".".join(found[0]) if found else "?"
            declared = found[1] if found else None
            want = "a mapping" if isinstance(declared, dict) else "a single value or list, not a mapping"
            # The type only, never the value: it may be a secret put in the wrong place.
            raise Exit(
                f"config {name}: must be {want} (an Invoke config file or INVOKE_* variable sets it otherwise); "
                "fix: correct that key in invoke.yaml",
                code=1,
            ) from None
        finally:
            _merge_depth.n = 0

    ic.merge_dicts = merge_dicts  # type: ignore[assignment]

    def guarded(loader: Any, kind: str) -> Any:
        def load(self: Any, path: Any) -> Any:
            try:
                return loader(self, path)
            except UnicodeDecodeError:
                raise Exit(f"config file {path}: not UTF-8 text; fix: save it as UTF-8", code=1) from None
            except ValueError as err:  # json.JSONDecodeError
                raise Exit(f"config file {path}: not valid {kind}: {err}; fix the file", code=1) from None
            except ic.yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(err, "problem", None) or type(err).__name__
                raise Exit(f"config file {path}: not valid {kind}{where}: {problem}; fix the file", code=1) from None

        return load

    ic.Config._load_yaml = guarded(ic.Config._load_yaml, "YAML")  # type: ignore[method-assign]
    ic.Config._load_yml = guarded(ic.Config._load_yml, "YAML")  # type: ignore[method-assign]
    ic.Config._load_json = guarded(ic.Config._load_json, "JSON")  # type: ignore[method-assign]

    _guard_environment()
    _quiet_closed_stdout()


def _guard_environment() -> None:
    """INVOKE_* variables: an uncastable value or two keys on one variable as one line; dr's list keys passed on."""
    import invoke.env as ie
    from invoke.exceptions import AmbiguousEnvVar, Exit, UncastableEnvVar

    path_set = ie.Environment._path_set

    def _path_set(self: Any, key_path: Any, value: str) -> None:
        try:
            path_set(self, key_path, value)
        except (ValueError, TypeError, UncastableEnvVar):
            var = (self._prefix or "") + self._to_env_var(key_path)
            old = self._path_get(key_path)
            if isinstance(old, (list, tuple)) and list(key_path[:1]) == ["dr"]:
                # A dr list key that invoke.yaml set: pass the text on, as Invoke
                # does for a key declared null; dr reads it as a JSON list
                # (config.from_invoke) and names the variable if it is not one.
                target = self.data
                for key in key_path[:-1]:
                    target = target.setdefault(key, {})
                target[key_path[-1]] = value
                return
            kind = {int: "a whole number", float: "a number", list: "a list", tuple: "a list"}.get(
                type(old), f"a {type(old).__name__}"
            )
            raise Exit(
                f"config {'.'.join(key_path)}: ${var} must be {kind}; fix: correct it, or set the key in invoke.yaml",
                code=1,
            ) from None

    ie.Environment._path_set = _path_set  # type: ignore[method-assign]

    env_load = ie.Environment.load

    def load(self: Any) -> Any:
        try:
            return env_load(self)
        except AmbiguousEnvVar as err:
            # Two keys map to one variable, e.g. a flat `backup_bucket:` beside
            # the `backup:` section: most likely a typo, which dr's key check names.
            from .. import config

            try:
                section = self._path_get(["dr"])
            except KeyError:
                section = {}
            try:
                config.check_keys(_plain(section))
            except config.ConfigError as bad:
                raise Exit(str(bad), code=1) from None
            raise Exit(f"config: {err}; fix: rename one of the keys that map to that variable", code=1) from None

    ie.Environment.load = load  # type: ignore[method-assign]


def _quiet_closed_stdout() -> None:
    """`inv --list | head -1`: Invoke's own output into a closed pipe exits 141, quietly, not with a traceback.

    Invoke prints --list, --help and --version in `Program.parse_cleanup`
    (after tasks.py is imported, so a host's opt-in is in time) and leaves
    them in stdout's buffer: the broken pipe shows at the flush at exit, as
    a traceback. Flushing here turns it into Invoke's own `Exit`.
    """
    import invoke.program as ip
    from invoke.exceptions import Exit

    from ..render import STDOUT_CLOSED, stdout_gone

    if not _all_present("invoke.program.Program.parse_cleanup"):
        return
    cleanup = ip.Program.parse_cleanup

    def parse_cleanup(self: Any) -> None:
        try:
            try:
                cleanup(self)
            finally:
                sys.stdout.flush()
        except BrokenPipeError:
            stdout_gone()
            raise Exit(code=STDOUT_CLOSED) from None

    ip.Program.parse_cleanup = parse_cleanup  # type: ignore[method-assign]


# ---------------------------------------------------------------------- the name a task was called under
def called_as(body: Callable[..., Any]) -> str | None:
    """The name Invoke's executor runs the task with this body under ("disaster.rollback"); None: not known.

    Invoke hands a task no trace of the name it was called by (the host's
    mount, an alias): its Executor keeps it in the `Call` it is running, a
    local of `Executor.execute`. Without it (switched off, or gone) hints
    name the default mount, `inv dr.<task>`.
    """
    if not enabled() or not _all_present("invoke.executor.Executor.execute"):
        return None
    from invoke.tasks import Call

    frame = sys._getframe(1)
    while frame is not None:
        call = frame.f_locals.get("call")
        if isinstance(call, Call) and getattr(call.task, "body", None) is body:
            return call.called_as
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _plain(value: Any) -> Any:
    """Invoke's config mappings as plain dicts."""
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return {k: _plain(value[k]) for k in value}
    return value


# ---------------------------------------------------------------------- restore's optional positional
class ScopedPositional(Argument):
    """A positional argument that `--path` or `--all` stands in for.

    Invoke treats every positional as required: one whose value is None eats
    the next bare word, and one still None at the end is a parse error. With
    `--path` or `--all` given there is no UNIT, so UNIT reads as "" and the
    bare TS goes to TS (`inv dr.restore --all 2026-04-15T18:00:00Z`). When the
    flag comes after TS instead, TS has landed in UNIT: then TS reads as "" too
    and the task moves the value over. What this relies on is Invoke's parser
    asking `.value` which positional is still unfilled.
    """

    scope_args: tuple[Argument, ...] = ()
    # Set on TS: it may stay unset only when this (UNIT) took its value.
    took_my_value: Argument | None = None

    def _get(self) -> Any:
        value = Argument.value.fget(self)  # type: ignore[attr-defined]
        scoped = any(a.got_value for a in self.scope_args)
        if value is None and scoped and (self.took_my_value is None or self.took_my_value.got_value):
            return ""
        return value

    value = property(_get, Argument.value.fset)  # type: ignore[attr-defined,assignment]


def scope_positionals(args: list[Argument], first: str, second: str, scopes: Sequence[str]) -> list[Argument]:
    """`args` with positionals `first` and `second` made optional when one of the `scopes` flags is given."""
    out: list[Argument] = []
    made: dict[str, ScopedPositional] = {}
    by_name = {a.name: a for a in args}
    for a in args:
        if a.name in (first, second):
            # Invoke's public constructor, with the attributes Task.get_arguments gave it.
            b = ScopedPositional(
                names=a.names,
                kind=a.kind,
                default=a.default,
                help=a.help,
                positional=a.positional,
                optional=a.optional,
                incrementable=a.incrementable,
                attr_name=a.attr_name,
            )
            b.scope_args = tuple(by_name[s] for s in scopes)
            made[a.name] = b  # type: ignore[index]
            a = b
        out.append(a)
    made[second].took_my_value = made[first]
    return out


# ---------------------------------------------------------------------- Invoke's project directory
def project_prefix(config: Any) -> str | None:
    """Where Invoke found the host's tasks.py (its project config dir), or None when not known.

    Invoke keeps it only in a private attribute; without it (switched off, or
    gone) the caller falls back to the working directory.
    """
    if not enabled():
        return None
    prefix = getattr(config, "_project_prefix", None)
    return str(prefix) if prefix else None


# ---------------------------------------------------------------------- the interpreter
@contextlib.contextmanager
def caching_own_bytecode() -> Iterator[None]:
    """Inside this block modules may write their `.pyc`, unless the user asked for none.

    Invoke turns bytecode writing off for the whole process
    (`sys.dont_write_bytecode`, unless `inv --write-pyc`) so that a host repo
    gets no `__pycache__` for its tasks.py; an editable install of ours would
    then compile every module from source on each run. Writing is let through
    only while our code runs (the collection's import, a task's body), only
    when the switch is Invoke's (`-B` or PYTHONDONTWRITEBYTECODE keep their
    choice), and the flag is always put back.
    """
    if not enabled() or sys.flags.dont_write_bytecode or not sys.dont_write_bytecode:
        yield
        return
    sys.dont_write_bytecode = False
    try:
        yield
    finally:
        sys.dont_write_bytecode = True


_freeze_registered = False


def freeze_heap_at_exit() -> None:
    """Skip the interpreter's last garbage collection when the process ends.

    At exit Python walks every object still alive for cycles (botocore's
    parsed models, the listings, Invoke's config): a large share of a short
    task's wall time. `gc.freeze()` as the last exit handler registered moves
    them out of the collector's sight; memory goes back to the OS with the
    process anyway. Nothing of ours depends on a collection at exit: files are
    written inside `with` blocks, and the exit handlers registered earlier
    (logging, connection pools) run after this one, unchanged. Called from a
    task's body, never at import.
    """
    global _freeze_registered
    if enabled() and not _freeze_registered:
        _freeze_registered = True
        atexit.register(gc.freeze)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Every object alive now stays out of the collector's scans inside this block.

    While thousands of short-lived requests come and go, full collections over
    botocore's models and the listing were a large share of a restore's CPU.
    `gc.unfreeze()` thaws everything frozen, so a caller (or host) that froze
    objects before keeps them frozen: the trick is skipped then.
    """
    if not enabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# botocore's, in their own module of this package (re-exported: callers use `internals.<name>`).
from .boto import (  # noqa: E402
    register_before_200_check as register_before_200_check,
)
from .boto import shared_model_loader as shared_model_loader  # noqa: E402
from .boto import signing_credentials as signing_credentials  # noqa: E402
from .boto import speed_up_session as speed_up_session  # noqa: E402
from .boto import timestamp_parser as timestamp_parser  # noqa: E402
