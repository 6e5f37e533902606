"""Thin Invoke tasks: flags -> config -> operation -> render.

A task never talks to boto3 and an operation never prints: each task here
builds the config from `c.config.dr`, runs the pre hooks, calls one operation,
renders its result and runs the post hooks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from . import config as config_mod
from . import render
from .config import DrConfig
from .errors import DrError
from .hooks import run_hooks

F = TypeVar("F", bound=Callable[..., Any])


def _plain(value: Any) -> Any:
    """Invoke's DataProxy -> plain dicts and lists."""
    if isinstance(value, Mapping) or hasattr(value, "_config"):
        return {k: _plain(value[k]) for k in value}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def raw_config(c: Context) -> dict[str, Any]:
    return _plain(c.config.get("dr") or {})


def project_dir(c: Context) -> Path:
    prefix = getattr(c.config, "_project_prefix", None)
    return Path(prefix) if prefix else Path.cwd()


def load_config(c: Context, **overrides: Any) -> DrConfig:
    return config_mod.load(raw_config(c), project_dir(c), **overrides)


def dr_task(*args: Any, **kwargs: Any) -> Callable[[F], Any]:
    """`@task` that turns a DrError into a one-line message and exit code 1, never a traceback."""

    def decorate(fn: F) -> Any:
        @functools.wraps(fn)
        def wrapper(c: Context, *a: Any, **kw: Any) -> Any:
            try:
                return fn(c, *a, **kw)
            except DrError as err:
                raise Exit(f"dr.{fn.__name__.rstrip('_').replace('_', '-')}: {err}", code=1) from None

        return task(*args, **kwargs)(wrapper)

    return decorate


def _hooks(c: Context, cfg: DrConfig, phase: str, name: str, result: Any = None) -> None:
    run_hooks(c, cfg.hooks, phase, name, result)


# ---------------------------------------------------------------------- snapshot
@dr_task(help={"label": "what this snapshot is for, e.g. pre-migration", "json": "print the index row as JSON"})
def snapshot(c: Context, label: str, json_: bool = False) -> None:
    """Copy every live key, server-side, to <snapshot_prefix><id>/ and record it."""
    from .ops.snapshot import take_snapshot, validate_label

    validate_label(label)
    cfg = load_config(c)
    _hooks(c, cfg, "pre", "snapshot")
    result = take_snapshot(cfg, label, progress=render.progress_for_terminal())
    render.warn(result.warnings)
    if json_:
        render.print_json(result.row())
    else:
        render.stdout().print(
            f"snapshot {result.id}: {result.objects} objects, {result.bytes} bytes -> {result.dest} "
            f"({result.seconds:.2f}s)"
        )
    _hooks(c, cfg, "post", "snapshot", result)


# ---------------------------------------------------------------------- list / show
@dr_task(name="list", help={"json": "print the rows as JSON"})
def list_(c: Context, json_: bool = False) -> None:
    """Snapshots recorded in the index."""
    from .ops.catalog import list_snapshots

    result = list_snapshots(load_config(c))
    render.warn(b.describe() for b in result.bad_lines)
    if json_:
        render.print_json(result.to_dict())
        return
    render.table(
        f"{len(result.snapshots)} snapshots",
        ["id", "label", "objects", "bytes", "dest"],
        ([r.get("id"), r.get("label"), r.get("objects"), r.get("bytes"), r.get("dest")] for r in result.snapshots),
    )


@dr_task(help={"id": "snapshot id, as `dr.list` shows it", "json": "print as JSON"})
def show(c: Context, id: str, json_: bool = False) -> None:  # noqa: A002 - the id is what users type
    """One snapshot's index row, and the rollbacks that involve it."""
    from .ops.catalog import show_snapshot

    result = show_snapshot(load_config(c), id)
    if json_:
        render.print_json(result.to_dict())
        return
    render.table(f"snapshot {id}", ["field", "value"], sorted(result.snapshot.items()))
    for r in result.rollbacks:
        render.stdout().print(f"rollback {r.get('id')} at {r.get('ts')}: snapshot={r.get('snapshot')} safety={r.get('safety_snapshot')}")


# ---------------------------------------------------------------------- drill
@dr_task(
    help={
        "keep": "keep the scratch directory and print where it is",
        "json": "print the result as JSON",
    }
)
def drill(c: Context, keep: bool = False, json_: bool = False) -> None:
    """A full recovery exercise on an embedded S3 server and a scratch copy of state/."""
    from .ops.drill import run_drill

    # No hooks here on purpose: a drill works on scratch copies, and a hook
    # such as `inv sync.push` would act on the real repo.
    raw = raw_config(c)
    result = run_drill(project_dir(c) / (raw.get("root") or "."), raw, keep=keep, on_step=None if json_ else _print_step)
    if json_:
        render.print_json(result.to_dict())
    else:
        out = render.stdout()
        verdict = "[green]PASS[/green]" if result.ok else "[red]FAIL[/red]"
        out.print(
            f"drill {verdict}: {len(result.steps)} steps in {result.seconds:.2f}s, "
            f"bytes lost (RPO): {result.bytes_lost}",
            markup=True,
        )
        if result.scratch:
            out.print(f"scratch kept at {result.scratch}")
    if not result.ok:
        raise Exit("dr.drill: recovery exercise failed: " + "; ".join(s.detail for s in result.steps if not s.ok), code=1)


def _print_step(step: Any) -> None:
    mark = "[green]ok[/green]" if step.ok else "[red]FAILED[/red]"
    render.stdout().print(f"{step.name:<28} {step.seconds:7.3f}s  {mark}  {step.detail}", markup=True)


ns = Collection("dr")
for _t in (snapshot, list_, show, drill):
    ns.add_task(_t)
ns.configure({"dr": config_mod.DEFAULTS})
