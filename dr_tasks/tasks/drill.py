"""`dr.drill`."""

from __future__ import annotations

from typing import Any

from invoke import Context
from invoke.exceptions import Exit

from .. import render
from .base import dr_task, project_dir, raw_config


# ---------------------------------------------------------------------- drill
@dr_task(
    help={
        "keep": "keep the scratch directory and print where it is",
        "json": "print the result as JSON",
    }
)
def drill(c: Context, keep: bool = False, json_: bool = False) -> None:
    """A full recovery exercise on an embedded S3 server and a scratch copy of state/."""
    from ..ops.drill import run_drill

    # No hooks here on purpose: a drill works on scratch copies, and a hook
    # such as `inv sync.push` would act on the real repo.
    raw = raw_config(c)
    result = run_drill(
        project_dir(c) / (raw.get("root") or "."),
        raw,
        keep=keep,
        on_step=None if json_ else _print_step,
        progress=render.progress_for_terminal(),
    )
    if json_:
        render.print_json(result.to_dict())
    else:
        out = render.stdout()
        verdict = "[green]PASS[/green]" if result.ok else "[red]FAIL[/red]"
        out.print(
            f"drill {verdict}: {len(result.steps)} steps in {result.seconds:.2f}s, "
            f"time to recover (RTO, restore + rollback + recover): {result.rto_seconds:.2f}s, "
            f"bytes lost (RPO): {result.bytes_lost}",
            markup=True,
        )
        if result.scratch:
            out.print(f"scratch kept at {result.scratch}")
    if not result.ok:
        raise Exit(
            "dr.drill: recovery exercise failed: " + "; ".join(s.detail for s in result.steps if not s.ok), code=1
        )


def _print_step(step: Any) -> None:
    mark = "[green]ok[/green]" if step.ok else "[red]FAILED[/red]"
    render.stdout().print(f"{step.name:<28} {step.seconds:7.3f}s  {mark}  {step.detail}", markup=True)


TASKS = (drill,)
