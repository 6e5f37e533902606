"""`dr.backup` (`dr.cross-region-backup`), `dr.freshness`, `dr.versioning`, `dr.verify`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from invoke import Context
from invoke.exceptions import Exit

from .. import render
from .base import dr_task, hooks, load_config


def _print_checks(checks: Iterable[Any]) -> None:
    """One line per check; a failing one is followed by its fix."""
    out = render.stdout()
    for c in checks:
        mark = "[green]PASS[/green]" if c.ok else "[red]FAIL[/red]"
        out.print(f"{mark}  {c.name:<12} {render.escape(render.commands(c.detail))}", markup=True, highlight=False)
        if not c.ok and c.fix:
            out.print(f"      {'':<12} fix: {render.commands(c.fix)}", markup=False, highlight=False)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _failed(task: str, checks: list[Any], shown: bool) -> Exit:
    """Exit 1 naming the failed checks.

    `shown`: the checklist went to stdout with each failure's detail and fix,
    so stderr names them once more, without repeating them; with `--json` it
    carries them in full (the JSON is for the program reading stdout).
    """
    bad = [c for c in checks if not c.ok]
    lines = [f"dr.{task}: {len(bad)} of {len(checks)} checks failed: " + ", ".join(c.name for c in bad)]
    if not shown:
        for c in bad:
            lines.append(f"  {c.name}: {c.detail}" + (f"\n    fix: {c.fix}" if c.fix else ""))
    return Exit("\n".join(lines), code=1)


# ---------------------------------------------------------------------- backup
@dr_task(
    writes="always",
    aliases=("cross-region-backup",),
    help={
        "mirror": "also delete destination keys the primary no longer has (shows them; needs --apply)",
        "apply": "with --mirror: really delete",
        "allow_mass_delete": "with --mirror: allow deleting more than half of what the backup holds for this repo",
        "adopt_backup": "continue a backup that backup.prefix holds from another primary (this repo's, moved)",
        "if_older_than": "do nothing (exit 0, no request) when the last complete backup is newer: 6d, 1w, 1d12h, 90m",
        "json": "print the result as JSON",
        "break-lock": "take over an expired lease (a dead holder on this machine needs no flag); never a live one",
    },
)
def backup(
    c: Context,
    mirror: bool = False,
    apply: bool = False,
    allow_mass_delete: bool = False,
    adopt_backup: bool = False,
    if_older_than: str | None = None,
    json_: bool = False,
    break_lock: bool = False,
) -> None:
    """Stream the primary's live and snapshot prefixes to the backup bucket in another region."""
    from ..ops.backup import BackupOptions, backup_endpoint, backup_not_due, run_backup
    from ..ops.freshness import ago
    from .maintenance import lease_notify

    cfg = load_config(c)
    backup_endpoint(cfg)  # a config error is one line, before anything is read
    # The primary's lease: no snapshot, rollback or prune changes what is being
    # streamed. run_backup takes it once its read-only plan shows something to
    # write (a no-change run needs none: see run_backup). Hooks stay outside it
    # (a hook may take it itself).
    options = BackupOptions(
        mirror=mirror,
        apply=apply,
        allow_mass_delete=allow_mass_delete,
        adopt=adopt_backup,
        if_older_than=if_older_than,
        break_lock=break_lock,
    )
    not_due = backup_not_due(cfg, options)
    if not_due is not None:
        msg = (
            f"backup not due: the last complete cross-region-backup {not_due.last.id} ran {ago(not_due.age)}, "
            f"within --if-older-than={if_older_than}; nothing sent"
        )
        if json_:
            render.print_json({"not_due": True, "last_complete": not_due.last.raw, "message": msg})
        else:
            render.lines([msg])
        return
    hooks(c, cfg, "pre", "backup")
    result = run_backup(cfg, options, progress=render.progress_for_terminal(), notify=lease_notify)
    render.warn(result.warnings)
    if json_:
        render.print_json(result.to_dict())
    else:
        render.lines(
            [
                f"backup {result.id}: copied {_n(result.copied, 'object')} ({result.bytes} bytes), "
                f"skipped {result.skipped} unchanged, deleted {result.deleted} -> {result.dest} ({result.seconds:.2f}s)"
                + (" [PARTIAL]" if result.partial else "")
            ]
        )
    if result.partial:
        shown = ", ".join(result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
        first = result.errors[0] if result.errors else "?"
        raise Exit(
            f"dr.backup: partial: {len(result.failed)} of {result.objects} objects failed ({shown}); "
            f"first error: {first}; the row {result.id} is marked partial\n"
            "  fix: run `inv dr.backup` again once the cause is fixed; it copies only what is missing",
            code=1,
        )
    hooks(c, cfg, "post", "backup", result)


# ---------------------------------------------------------------------- freshness
@dr_task(
    help={
        "max_snapshot_age": "also fail when the newest snapshot is older than this, e.g. 2d, 1w or 1d12h",
        "json": "print the result as JSON (for monitors)",
    }
)
def freshness(c: Context, max_snapshot_age: str | None = None, json_: bool = False) -> None:
    """Lint: a missing or stale cross-region-backup row, unreadable index lines, an old newest snapshot."""
    from ..ops.freshness import check_freshness

    cfg = load_config(c)
    hooks(c, cfg, "pre", "freshness")
    result = check_freshness(cfg, max_snapshot_age=max_snapshot_age)
    if json_:
        render.print_json(result.to_dict())
    else:
        _print_checks(result.checks)
    if not result.ok:
        raise _failed("freshness", result.checks, shown=not json_)
    hooks(c, cfg, "post", "freshness", result)


# ---------------------------------------------------------------------- versioning
@dr_task(
    writes=lambda kw: bool(kw.get("enable")),
    help={
        "enable": "turn versioning on and put the noncurrent-version rule (other rules are kept)",
        "json": "print the result as JSON",
    },
)
def versioning(c: Context, enable: bool = False, json_: bool = False) -> None:
    """Show (or --enable) bucket versioning and the rule expiring noncurrent versions after retention_days."""
    from ..ops.versioning import enable_versioning, versioning_status

    cfg = load_config(c)
    hooks(c, cfg, "pre", "versioning")
    result = enable_versioning(cfg) if enable else versioning_status(cfg)
    if json_:
        render.print_json(result.to_dict())
    else:
        out = render.stdout()
        out.print(result.summary())
        others = ", ".join(result.other_rules) if result.other_rules else "none"
        out.print(f"other lifecycle rules (kept as they are): {others}")
        out.print(
            f"OK: as configured (retention_days {cfg.retention_days})"
            if result.ok
            else "NOT as configured: " + "; ".join(result.problems)
        )
    if not result.ok:
        raise Exit(
            f"dr.versioning: s3://{cfg.bucket} is not as configured: "
            + "; ".join(result.problems)
            + (
                "\n  fix: check what the store supports (it did not keep the settings)"
                if enable
                else f"\n  fix: {result.fix}"
            ),
            code=1,
        )
    hooks(c, cfg, "post", "versioning", result)


# ---------------------------------------------------------------------- verify
@dr_task(
    writes=lambda kw: bool(kw.get("deep")),
    help={
        "deep": "also re-read every object of the snapshot and check its sha256 against the manifest",
        "id": "the snapshot to check (default: the newest)",
        "json": "print the result as JSON",
        "break-lock": "with --deep: take over a stale lease to record sha256s (expired, or its process is gone)",
    },
)
def verify(
    c: Context, deep: bool = False, id: str | None = None, json_: bool = False, break_lock: bool = False
) -> None:
    """The whole "is DR working" checklist, one line per check."""
    from ..ops.verify import run_verify
    from .maintenance import lease_notify

    cfg = load_config(c)
    hooks(c, cfg, "pre", "verify")
    # Only --deep writes (sha256s into the manifest), under the lease the operation takes.
    result = run_verify(
        cfg,
        deep=deep,
        snapshot_id=id,
        progress=render.progress_for_terminal(),
        break_lock=break_lock,
        notify=lease_notify,
    )
    if json_:
        render.print_json(result.to_dict())
    else:
        _print_checks(result.checks)
    if not result.ok:
        raise _failed("verify", result.checks, shown=not json_)
    hooks(c, cfg, "post", "verify", result)


TASKS = (backup, freshness, versioning, verify)
