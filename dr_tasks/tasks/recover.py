"""`dr.recover`: the primary bucket back from the cross-region backup."""

from __future__ import annotations

from invoke import Context
from invoke.exceptions import Exit

from .. import render
from .base import dr_task, hooks, load_config


@dr_task(
    writes="apply",
    help={
        "apply": "really copy (without it: show what would be copied)",
        "dry_run": "show what would be copied and copy nothing, even with --apply (also: Invoke's --dry)",
        "create_bucket": "create the primary bucket (versioned) when it does not exist",
        "overwrite": "also replace keys the primary still holds with other content (kept by default)",
        "include_deleted": "also bring back keys the primary had deleted before the last backup (left out by default)",
        "from_other_source": "recover a backup made from another primary than this repo's (refused without it)",
        "json": "print the result as JSON",
        "break-lock": "take over an expired lease (a dead holder on this machine needs no flag); never a live one",
    },
)
def recover(
    c: Context,
    apply: bool = False,
    create_bucket: bool = False,
    overwrite: bool = False,
    include_deleted: bool = False,
    from_other_source: bool = False,
    json_: bool = False,
    break_lock: bool = False,
    dry_run: bool = False,
) -> None:
    """Stream everything the backup holds for this repo back into the primary bucket; never deletes."""
    from ..ops.recover import recover_from_backup
    from .maintenance import lease_notify

    cfg = load_config(c)
    hooks(c, cfg, "pre", "recover")
    # --apply holds the primary's lease while it plans and copies (hooks stay outside it).
    result = recover_from_backup(
        cfg,
        apply=apply,
        create_bucket=create_bucket,
        overwrite=overwrite,
        include_deleted=include_deleted,
        from_other_source=from_other_source,
        progress=render.progress_for_terminal(),
        break_lock=break_lock,
        notify=lease_notify,
    )
    kept: list[str] = []
    if result.differs:
        shown = ", ".join(result.differs[:5]) + (" ..." if len(result.differs) > 5 else "")
        kept.append(
            f"{len(result.differs)} keys the primary still holds differ from the backup and "
            f"{'were' if apply else 'are'} kept ({shown}); `inv dr.restore` and `inv dr.rollback` deal with "
            "surviving data; --overwrite replaces them with the backup's copies"
        )
    if result.unverified:
        shown = ", ".join(result.unverified[:5]) + (" ..." if len(result.unverified) > 5 else "")
        kept.append(
            f"{len(result.unverified)} keys the primary holds were skipped on their size alone, no record ties "
            f"them to the backup's copies ({shown}); --overwrite replaces them with the backup's copies"
        )
    if result.deleted:
        shown = ", ".join(result.deleted[:5]) + (" ..." if len(result.deleted) > 5 else "")
        kept.append(
            f"{len(result.deleted)} keys the backup holds had been deleted in the primary before the last backup "
            f"and {'were' if apply else 'are'} left out ({shown}); --include-deleted brings them back too"
        )
    render.warn(result.warnings + kept)
    if json_:
        render.print_json(result.to_dict())
    else:
        if not apply:
            # Keys are user data: plain lines, never markup.
            report = [
                f"recover plan {result.source} -> {result.dest}: {result.objects} objects in the backup, "
                f"{len(result.to_copy)} to copy, {result.skipped} already there"
            ]
            report += [f"  copy {key}" for key in result.to_copy[:10]]
            if len(result.to_copy) > 10:
                report.append(f"  ... and {len(result.to_copy) - 10} more (--json lists all)")
            report += [f"  keep {key} (differs from the backup)" for key in result.differs[:10]]
            report += [f"  skip {key} (deleted in the primary before the last backup)" for key in result.deleted[:10]]
            if len(result.differs) > 10:
                report.append(f"  ... and {len(result.differs) - 10} more kept (--json lists all)")
            flags = " --create-bucket" if any("--apply creates it" in w for w in result.warnings) else ""
            report.append(f"dry run: nothing was copied; run `{render.command('recover')} --apply{flags}` to copy")
            render.lines(report)
        else:
            render.lines(
                [
                    f"recovered {result.copied} objects ({result.bytes} bytes) into {result.dest}, "
                    f"{result.skipped} already there ({result.seconds:.2f}s)"
                ]
            )
    if not result.ok:
        raise Exit(
            f"dr.recover: {len(result.failed)} objects failed ({', '.join(result.failed[:5])}); first error: "
            f"{result.errors[0] if result.errors else '?'}\n  fix: run the same command again (it continues)",
            code=1,
        )
    hooks(c, cfg, "post", "recover", result)


TASKS = (recover,)
