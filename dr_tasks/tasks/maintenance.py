"""`dr.reindex`, `dr.prune`, `dr.pin`: keeping the recovery system itself in order.

Each is a dry run unless told otherwise (`--apply`); `dr.pin` is small and
reversible (`--unpin`), so it acts at once.
"""

from __future__ import annotations

from typing import Any

from invoke import Context
from invoke.exceptions import Exit

from .. import render
from .base import dr_task, hooks, load_config


def lease_notify(level: str, message: str) -> None:
    """How tasks show what the lease has to say (notes and warnings, on stderr)."""
    if level == "note":
        render.note([message])
    else:
        render.warn([message])


# ---------------------------------------------------------------------- reindex
@dr_task(
    writes="apply",
    auto_shortflags=False,
    help={
        "apply": "append the missing rows (without it: list them and write nothing)",
        "dry_run": "list them and write nothing, even with --apply (also: Invoke's --dry)",
        "json": "print the result as JSON",
        "break_lock": "take over a stale lease (expired, or its process is gone); never a live one",
    },
)
def reindex(
    c: Context, apply: bool = False, json_: bool = False, dry_run: bool = False, break_lock: bool = False
) -> None:
    """Rebuild missing snapshot (and pin) rows of the index from the manifests in the bucket."""
    from ..ops.reindex import reindex as run_reindex

    cfg = load_config(c)
    if apply:
        hooks(c, cfg, "pre", "reindex")
    # --apply takes the lease (in the operation); a dry run reads without it.
    result = run_reindex(cfg, apply=apply, break_lock=break_lock, notify=lease_notify)
    render.warn(b.describe() for b in result.bad_lines)
    render.warn(result.problems)
    if json_:
        render.print_json(result.to_dict())
    else:
        out = render.stdout()
        total = result.present + len(result.snapshot_rows)
        out.print(
            f"reindex s3://{cfg.bucket}/{cfg.snapshot_prefix}: {total} snapshots with a readable manifest, "
            f"{result.present} already in the index, {len(result.snapshot_rows)} missing; "
            f"{len(result.pin_rows)} pins missing",
            markup=False,
        )
        for r in result.rows:
            detail = f"  ({r['objects']} objects, {r['bytes']} bytes)" if r["kind"] == "snapshot" else ""
            out.print(f"  + {r['kind']:<8} {r['id']}{detail}", markup=False)
        if not result.rows:
            out.print("the index is complete: nothing to append", markup=False)
        elif result.applied:
            out.print(f"appended {len(result.rows)} rows to {cfg.index}", markup=False)
        else:
            out.print(
                f"dry run: nothing was written; `{render.command('reindex')} --apply` "
                f"appends these {len(result.rows)} rows",
                markup=False,
            )
    if apply:
        hooks(c, cfg, "post", "reindex", result)
    if result.problems:
        raise Exit(
            f"dr.reindex: {len(result.problems)} manifests could not be turned into rows (see the warnings); "
            "their snapshots are not in the index",
            code=1,
        )


# ---------------------------------------------------------------------- prune
@dr_task(
    writes="apply",
    auto_shortflags=False,
    help={
        "keep_last": "keep the N newest snapshots",
        "keep_daily": "keep the newest snapshot of each of the last D days that have snapshots",
        "keep_weekly": "keep the newest snapshot of each of the last W ISO weeks that have snapshots",
        "keep_monthly": "keep the newest snapshot of each of the last M months that have snapshots",
        "apply": "delete what the plan says (without it: print the plan and delete nothing)",
        "dry_run": "print the plan and delete nothing, even with --apply (also: Invoke's --dry)",
        "break_lock": "take over an expired lease (a dead holder on this machine needs no flag); never a live one",
        "json": "print the plan (or the result) as JSON",
    },
)
def prune(
    c: Context,
    keep_last: str | None = None,
    keep_daily: str | None = None,
    keep_weekly: str | None = None,
    keep_monthly: str | None = None,
    apply: bool = False,
    break_lock: bool = False,
    json_: bool = False,
    dry_run: bool = False,
) -> None:
    """Delete snapshots that no keep rule keeps (always keeps the newest and pinned ones); a dry run by default."""
    from ..ops.prune import KeepRules
    from ..ops.prune import prune as run_prune

    # Flags are parsed here, not by Invoke's int(), so a bad value is a one-line error naming the flag.
    rules = KeepRules.parse(last=keep_last, daily=keep_daily, weekly=keep_weekly, monthly=keep_monthly)
    cfg = load_config(c)
    if apply:
        hooks(c, cfg, "pre", "prune")
    result = run_prune(cfg, rules, apply=apply, break_lock=break_lock, notify=lease_notify)
    render.warn(result.warnings)
    if json_:
        render.print_json(result.to_dict())
    else:
        _print_prune(result, cfg.snapshot_prefix)
    if apply:
        hooks(c, cfg, "post", "prune", result)


def _print_prune(result: Any, snapshot_prefix: str) -> None:
    out = render.stdout()
    render.table(
        f"prune s3://{result.bucket}/{snapshot_prefix}: keep {len(result.keep)}, delete {len(result.delete)}",
        ["id", "action", "why"],
        ([d.id, "keep" if d.keep else "DELETE", ", ".join(d.reasons)] for d in result.decisions),
    )
    for name in result.orphans:
        out.print(f"incomplete (no manifest), removed with --apply: {snapshot_prefix}{name}/", markup=False)
    for name in result.recent_orphans:
        out.print(f"incomplete (no manifest), too recent to remove: {snapshot_prefix}{name}/", markup=False)
    for name in result.foreign:
        out.print(f"not a snapshot, left alone: {name}", markup=False)
    if result.applied:
        if result.row is None:
            out.print("nothing to delete", markup=False)
        else:
            out.print(
                f"pruned {len(result.row['deleted'])} snapshots and {len(result.row['orphans'])} incomplete ones "
                f"({result.objects_deleted} objects); kept {len(result.keep)}",
                markup=False,
            )
    elif result.delete or result.orphans:
        out.print(
            f"dry run: nothing was deleted; run again with --apply to delete {len(result.delete)} snapshots"
            + (f" and {len(result.orphans)} incomplete ones" if result.orphans else ""),
            markup=False,
        )
    else:
        out.print("nothing to delete", markup=False)


# ---------------------------------------------------------------------- pin
@dr_task(
    writes="always",
    auto_shortflags=False,
    help={
        "id": "snapshot id, as `dr.list` shows it",
        "unpin": "remove the pin instead",
        "reason": "why it is pinned (one line, kept in the index)",
        "json": "print the result as JSON",
        "break_lock": "take over a stale lease (expired, or its process is gone); never a live one",
    },
)
def pin(
    c: Context, id: str, unpin: bool = False, reason: str = "", json_: bool = False, break_lock: bool = False
) -> None:
    """Pin a snapshot so prune never deletes it (`--unpin` to undo)."""
    from ..ops.prune import pin_snapshot

    cfg = load_config(c)
    hooks(c, cfg, "pre", "pin")
    result = pin_snapshot(cfg, id, unpin=unpin, reason=reason or None, break_lock=break_lock, notify=lease_notify)
    if json_:
        render.print_json(result.to_dict())
    else:
        state = "pinned" if result.pinned else "unpinned"
        text = f"{state} {result.id}" if result.changed else f"{result.id} was already {state}: nothing written"
        render.stdout().print(text, markup=False)
    hooks(c, cfg, "post", "pin", result)


# ---------------------------------------------------------------------- unprune
@dr_task(
    writes="apply",
    auto_shortflags=False,
    help={
        "id": "the pruned snapshot's id (`inv dr.list --all` shows pruned ones)",
        "apply": "remove the delete markers and append its row (without it: list them and change nothing)",
        "dry_run": "list them and change nothing, even with --apply (also: Invoke's --dry)",
        "break_lock": "take over an expired lease (a dead holder on this machine needs no flag); never a live one",
        "json": "print the result as JSON",
    },
)
def unprune(
    c: Context, id: str, apply: bool = False, break_lock: bool = False, json_: bool = False, dry_run: bool = False
) -> None:
    """Bring back a pruned snapshot on a versioned bucket: remove the delete markers hiding it, append its row."""
    from ..ops.reindex import unprune as run_unprune

    cfg = load_config(c)
    if apply:
        hooks(c, cfg, "pre", "unprune")
    result = run_unprune(cfg, id, apply=apply, break_lock=break_lock, notify=lease_notify)
    if json_:
        render.print_json(result.to_dict())
    else:
        out = render.stdout()
        n = len(result.markers)
        if result.applied:
            out.print(
                f"unpruned {result.id}: removed {n} delete markers"
                + (f"; appended its row to {cfg.index}" if result.row else "; its row was already there"),
                markup=False,
            )
        else:
            out.print(f"snapshot {result.id}: {n} delete markers hide it in s3://{result.bucket}", markup=False)
            out.print(f"dry run: nothing was changed; `{render.command('unprune')} {result.id} --apply` brings it back")
    if apply:
        hooks(c, cfg, "post", "unprune", result)


TASKS = (reindex, prune, pin, unprune)
