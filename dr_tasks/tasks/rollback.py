"""`dr.rollback ID [--apply --confirm-label=L]`: the plan first, then, deliberately, the change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Context

from .. import render
from ..errors import DrError
from .base import dr_task, hooks, load_config

if TYPE_CHECKING:
    from ..ops.rollback import PlanItem, RollbackPlan

# Names shown per group in the text plan; `--json` lists all of them.
NAMES_SHOWN = 10


def _group(title: str, items: list[PlanItem], detail: str = "", show_names: bool = True) -> list[str]:
    lines = [f"  {title:<10} {len(items):>6}{detail}"]
    if show_names:
        for item in items[:NAMES_SHOWN]:
            lines.append(f"      {item.key}" + (f"  ({item.reason})" if item.reason else ""))
        if len(items) > NAMES_SHOWN:
            lines.append(f"      ... and {len(items) - NAMES_SHOWN} more (--json lists all)")
    return lines


def plan_lines(plan: RollbackPlan) -> list[str]:
    changed = plan.overwrites
    where = f"s3://{plan.bucket}/{plan.prefix}"
    deletes = "delete markers; versioned bucket" if plan.versioned else "PERMANENT: the bucket is not versioned"
    return [
        f"rollback plan: make {where} equal to snapshot {plan.snapshot} "
        f"(label {plan.label!r}, taken {plan.snapshot_ts})",
        *_group(
            "copy back",
            plan.copy,
            f"  ({changed} changed, {len(plan.copy) - changed} missing; {plan.copy_bytes} bytes, server-side)",
        ),
        *_group("delete", plan.delete, f"  ({deletes})"),
        *_group("unchanged", plan.unchanged, show_names=False),
        *_group("preserved", plan.preserved, "  (dr.preserve: never touched)"),
    ]


# No short flags: `-a` for --apply would be friction thrown away.
@dr_task(
    writes="apply",
    auto_shortflags=False,
    help={
        "id": "snapshot id to roll live back to, as `dr.list` shows it",
        "apply": "change live (without it: print the plan and change nothing)",
        "dry_run": "print the plan and change nothing, even with --apply (also: Invoke's --dry)",
        "confirm_label": "the snapshot's label, typed out: must match byte for byte",
        "allow_unversioned": "accept that deletes and overwrites are permanent on an unversioned bucket",
        "json": "print the plan (or the result) as JSON",
        "break_lock": "take over an expired lease (a dead holder on this machine needs no flag); never a live one",
    },
)
def rollback(
    c: Context,
    id: str,
    apply: bool = False,
    confirm_label: str | None = None,
    allow_unversioned: bool = False,
    json_: bool = False,
    break_lock: bool = False,
    dry_run: bool = False,
) -> None:
    """Make live equal to snapshot ID: a plan first; --apply takes a pre-rollback snapshot, then copies back."""
    from ..ops.rollback import UNVERSIONED_LOUD, apply_rollback, plan_rollback

    cfg = load_config(c)
    if not apply:
        plan = plan_rollback(cfg, id, progress=render.progress_for_terminal())
        if json_:
            data = plan.to_dict()
            # The command as the user types it here (the mount's name, or the `dr` program).
            data["apply_command"] = render.commands(plan.apply_command())
            render.print_json(data)
        else:
            render.lines(plan_lines(plan))
        render.warn(plan.warnings)
        if plan.needs_allow_unversioned:
            render.warn([UNVERSIONED_LOUD])
        if not plan.changes:
            # Nothing to do is not a refusal: exit 0, and no command to apply.
            if not json_:
                render.lines(
                    [f"nothing to change: live already equals snapshot {plan.snapshot} (preserved paths aside)"]
                )
            return
        # A plan with changes exits 1 on purpose: `inv dr.rollback ID && ...` must not read as done.
        raise DrError(
            f"not applied: that was the plan ({len(plan.copy)} to copy back, {len(plan.delete)} to delete); "
            "nothing was changed",
            f"to apply it, run: {plan.apply_command()}",
        )

    # Label friction first, so a typo costs no request and runs no hook.
    from ..history import snapshot_row
    from ..ops.rollback import check_confirm_label, label_of

    check_confirm_label(label_of(snapshot_row(cfg, id), id), confirm_label, id)
    hooks(c, cfg, "pre", "rollback")
    from .maintenance import lease_notify

    # The operation takes the lease (its safety snapshot runs under it);
    # hooks stay outside it (a post hook may take it).
    result = apply_rollback(
        cfg,
        id,
        confirm_label,
        allow_unversioned=allow_unversioned,
        progress=render.progress_for_terminal(),
        break_lock=break_lock,
        notify=lease_notify,
    )
    render.warn(result.warnings)
    if json_:
        data = result.to_dict()
        data["undo_command"] = render.commands(result.undo_command())
        render.print_json(data)
    else:
        render.lines(
            [
                f"rolled back to {result.snapshot}: {result.copied} copied back, {result.deleted} deleted, "
                f"{result.unchanged} unchanged, {result.preserved} preserved ({result.seconds:.2f}s)",
                render.commands(f"undo with: {result.undo_command()}"),
            ]
        )
    hooks(c, cfg, "post", "rollback", result)


TASKS = (rollback,)
