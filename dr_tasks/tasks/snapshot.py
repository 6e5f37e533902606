"""`dr.snapshot`, `dr.list`, `dr.show`."""

from __future__ import annotations

from invoke import Context

from .. import render
from .base import dr_task, hooks, load_config


# ---------------------------------------------------------------------- snapshot
@dr_task(
    writes="always",
    help={
        "label": "what this snapshot is for, e.g. pre-migration",
        "json": "print the index row as JSON",
        "break-lock": "take over an expired lease (a dead holder on this machine needs no flag); never a live one",
    },
)
def snapshot(c: Context, label: str, json_: bool = False, break_lock: bool = False) -> None:
    """Copy every live key, server-side, to <snapshot_prefix><id>/ and record it."""
    from ..ops.snapshot import take_snapshot, validate_label
    from .maintenance import lease_notify

    validate_label(label)
    cfg = load_config(c)
    hooks(c, cfg, "pre", "snapshot")
    # Hooks stay outside the lease, which the operation takes: a post hook
    # such as `inv dr.backup` takes it itself.
    result = take_snapshot(
        cfg, label, progress=render.progress_for_terminal(), break_lock=break_lock, notify=lease_notify
    )
    render.warn(result.warnings)
    if json_:
        render.print_json(result.row())
    else:
        render.stdout().print(
            f"snapshot {result.id}: {result.objects} objects, {result.bytes} bytes -> {result.dest} "
            f"({result.seconds:.2f}s)",
            markup=False,
        )
    hooks(c, cfg, "post", "snapshot", result)


# ---------------------------------------------------------------------- list / show
@dr_task(name="list", help={"json": "print the rows as JSON", "all": "also list snapshots that were pruned"})
def list_(c: Context, json_: bool = False, all_: bool = False) -> None:
    """Snapshots recorded in the index."""
    from ..ops.catalog import list_snapshots

    result = list_snapshots(load_config(c), include_pruned=all_)
    render.warn(b.describe() for b in result.bad_lines)
    if json_:
        render.print_json(result.to_dict())
        return
    render.table(
        f"{len(result.snapshots)} snapshots",
        ["id", "label", "objects", "size", "dest"],
        (
            [r.get("id"), r.get("label"), r.get("objects"), render.human_bytes(r.get("bytes")), r.get("dest")]
            for r in result.snapshots
        ),
    )
    if result.pruned and not all_:
        render.stdout().print(f"{len(result.pruned)} pruned snapshots not shown (--all lists them)", markup=False)


@dr_task(help={"id": "snapshot id, as `dr.list` shows it", "json": "print as JSON"})
def show(c: Context, id: str, json_: bool = False) -> None:
    """One snapshot's index row, and the rollbacks that involve it."""
    from ..ops.catalog import show_snapshot

    result = show_snapshot(load_config(c), id)
    render.warn(b.describe() for b in result.bad_lines)
    if json_:
        render.print_json(result.to_dict())
        return
    render.table(f"snapshot {id}", ["field", "value"], sorted(result.snapshot.items()))
    for r in result.rollbacks:
        render.stdout().print(
            f"rollback {r.get('id')} at {r.get('ts')}: snapshot={r.get('snapshot')} safety={r.get('safety_snapshot')}",
            markup=False,
        )


TASKS = (snapshot, list_, show)
