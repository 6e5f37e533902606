"""`dr.drill`: the embedded exercise, or `--live` on the configured buckets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import Context
from invoke.exceptions import Exit

from .. import render
from ..errors import DrError
from .base import dr_task, load_config, project_dir, raw_config


# ---------------------------------------------------------------------- drill
@dr_task(
    writes=lambda kw: bool(kw.get("live")),
    help={
        "live": "bring the newest snapshot back from the real cold copy and check every byte (reads only; "
        "appends a drill row)",
        "id": "with --live: the snapshot to bring back (default: the newest)",
        "source": "with --live: backup (the cold copy, default) or primary (the primary's snapshot prefix)",
        "sample": "with --live: check N units drawn at random (the seed is printed) instead of every object",
        "seed": "with --sample: the seed to draw with (repeats an earlier draw)",
        "keep": "keep the scratch (or, with --live, the holding) directory and print where it is",
        "report": "also write the drill as a self-contained HTML page (timeline, bytes recovered, RTO) to PATH",
        "json": "print the result as JSON",
    },
)
def drill(
    c: Context,
    live: bool = False,
    id: str | None = None,
    source: str = "backup",
    sample: str | None = None,
    seed: str | None = None,
    keep: bool = False,
    report: str | None = None,
    json_: bool = False,
) -> None:
    """A recovery exercise: on an embedded S3 server and a scratch copy of state/, or --live on the real buckets."""
    # No hooks here on purpose: a drill works on scratch copies, and a hook
    # such as `inv sync.push` would act on the real repo.
    if live:
        _live(c, id, source, _whole(sample, "--sample"), _whole(seed, "--seed"), keep, report, json_)
        return
    from ..ops.drill import RECOVERY_STEPS, run_drill

    raw = raw_config(c)
    result = run_drill(
        project_dir(c) / (raw.get("root") or "."),
        raw,
        keep=keep,
        on_step=None if json_ else _print_step,
        progress=render.progress_for_terminal(),
    )
    if report:
        _write_report(report, result, "embedded recovery drill", RECOVERY_STEPS, json_)
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


def _whole(value: str | None, flag: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DrError(f"{flag} must be a whole number, got {value!r}", f"e.g. {flag}=5") from None


def _live(
    c: Context,
    snap_id: str | None,
    source: str,
    sample: int | None,
    seed: int | None,
    keep: bool,
    report: str | None,
    json_: bool,
) -> None:
    from ..ops.drill_live import RECOVERY_STEPS, LiveDrillOptions, run_live_drill

    cfg = load_config(c)
    options = LiveDrillOptions(snap_id, source, sample, seed, keep)
    result = run_live_drill(cfg, options, on_step=None if json_ else _print_step)
    if report:
        failed = [(f.key, f.why) for f in result.failed]
        _write_report(report, result, result.title, RECOVERY_STEPS, json_, failed)
    if json_:
        render.print_json(result.to_dict())
    else:
        out = render.stdout()
        verdict = "[green]PASS[/green]" if result.ok else "[red]FAIL[/red]"
        out.print(
            f"live drill {verdict}: snapshot {result.snapshot} from {result.where}: {result.checked} of "
            f"{result.objects} objects checked, {result.bytes} bytes, seed {result.seed}; "
            f"time to first byte {result.ttfb_seconds}s, RTO {result.rto_seconds:.2f}s; row {result.id}",
            markup=True,
            highlight=False,
        )
        if result.holding:
            out.print(f"holding dir kept at {result.holding}")
    if not result.ok:
        shown = "; ".join(f"{f.key}: {f.why}" for f in result.failed[:10])
        more = f" and {len(result.failed) - 10} more" if len(result.failed) > 10 else ""
        failed_steps = "; ".join(s.detail for s in result.steps if not s.ok)
        raise Exit(
            f"dr.drill --live: snapshot {result.snapshot} did not come back from {result.where}: "
            + (shown + more if shown else failed_steps)
            + f"\n  fix: check the cold copy (`inv dr.verify --deep`, then `inv dr.backup`); row {result.id} "
            "records the failure",
            code=1,
        )


def _write_report(
    path: str,
    result: Any,
    title: str,
    recovery: tuple[str, ...],
    json_: bool,
    failed: list[tuple[str, str]] | None = None,
) -> None:
    from ..report_html import write_report

    target = Path(path)
    written = write_report(
        target if target.is_absolute() else Path.cwd() / target, result, title, recovery, failed or []
    )
    if not json_:
        render.stdout().print(f"report written to {written}", highlight=False)


def _print_step(step: Any) -> None:
    mark = "[green]ok[/green]" if step.ok else "[red]FAILED[/red]"
    render.stdout().print(f"{step.name:<28} {step.seconds:7.3f}s  {mark}  {step.detail}", markup=True)


TASKS = (drill,)
