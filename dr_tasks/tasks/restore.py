"""`dr.restore UNIT TS` (and `--path P TS`, `--all TS`)."""

from __future__ import annotations

from typing import Any

from invoke import Context
from invoke.parser import Argument
from invoke.tasks import Task

from .. import render
from ..errors import DrError
from ..internals import scope_positionals
from .base import dr_task, hooks, load_config


# ---------------------------------------------------------------------- optional positional UNIT
class RestoreTask(Task):
    """UNIT and TS are positional, and `--path` or `--all` stand in for UNIT (see ScopedPositional)."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        args = super().get_arguments(ignore_unknown_help)
        return scope_positionals(args, "unit", "ts", ("path", "all_"))


# ---------------------------------------------------------------------- restore
@dr_task(
    klass=RestoreTask,
    positional=["unit", "ts"],
    help={
        "unit": "the unit: a directory under dr.units (state/skills/ by default)",
        "ts": "ISO 8601 with a timezone (2026-04-15T18:00:00Z, 2026-04-15T18:00:00+02:00) or a snapshot id",
        "path": "restore this root-relative path instead of a unit, e.g. state/notes/",
        "all": "restore the whole substrate instead of a unit",
        "force": "replace an existing holding dir for the same unit and time",
        "full": "show whole diffs (by default each file's diff is capped)",
        "json": "print the whole result as JSON",
    },
)
def restore(
    c: Context,
    unit: str | None = None,
    ts: str | None = None,
    path: str | None = None,
    all_: bool = False,
    force: bool = False,
    full: bool = False,
    json_: bool = False,
) -> None:
    """Write a unit as it was at TS into the holding dir and diff it against live; nothing live changes.

    inv dr.restore UNIT TS | inv dr.restore --path state/notes/ TS | inv dr.restore --all TS
    (TS: 2026-04-15T18:00:00Z, 2026-04-15T18:00:00+02:00, or a snapshot id from dr.list)
    """
    from ..ops.restore import RestoreOptions, run_restore

    if (path or all_) and unit and not ts:
        # `inv dr.restore TS --all`: the bare TS came before the flag, so it filled UNIT.
        unit, ts = None, unit
    cfg = load_config(c)
    hooks(c, cfg, "pre", "restore")
    options = RestoreOptions(ts or "", unit=unit or None, path=path or None, all_=all_, force=force, full=full)
    result = run_restore(cfg, options, progress=render.progress_for_terminal())
    render.warn(result.warnings)
    if json_:
        render.print_json(result.to_dict())
    else:
        render.lines(summary_lines(result))
    if not result.ok:
        shown = "; ".join(f"{r.key!r} ({r.reason})" for r in result.refused[:10])
        more = f" and {len(result.refused) - 10} more" if len(result.refused) > 10 else ""
        raise DrError(
            f"{len(result.refused)} keys were NOT restored (each with its reason): {shown}{more}",
            f"every other key was restored into {result.holding_dir}; rename or delete those keys in the bucket",
        )
    hooks(c, cfg, "post", "restore", result)


def summary_lines(result: Any) -> list[str]:
    """The human report: what was restored, the diff against live, where the receipt is."""
    what = {"unit": f"unit {result.unit}", "path": f"path {result.path}", "all": "the whole substrate"}[result.scope]
    d = result.diff
    c = result.counts()
    lines = [
        f"restored {what} as it was at {result.ts} into {result.holding_dir}",
        f"  {c['restored']} files, {c['bytes']:,} bytes; absent at TS: {c['deleted_at_ts']} deleted, "
        f"{c['born_after_ts']} not yet created" + (f"; {c['refused']} REFUSED" if c["refused"] else ""),
        f"live {d.live_dir} since TS ({result.ts}): {c['deleted_since_ts']} deleted, "
        f"{c['created_since_ts']} created, {c['changed_since_ts']} changed, {c['unchanged']} unchanged",
    ]
    lines += since_ts_lines(d)
    for r in result.refused:
        lines.append(f"  REFUSED   {r.key!r}: {r.reason}")
    if d.files:
        lines.append("what changed, file by file (- live now, + as at TS):")
    for f in d.files:
        lines.append("")
        if f.kind == "text" and f.lines and not f.lines[0].startswith("--- "):
            lines.append(f"{f.name} (text):")  # a note, not a unified diff: it needs the name
            lines.extend(f"  {line}" for line in f.lines)
        elif f.kind == "text":
            lines.extend(f.lines)
        elif f.kind == "symlink":
            lines.append(f"{f.name} (symlink, not followed):")
            lines.append(f"  live   symlink -> {f.live['symlink']}")
            lines.append(f"  at TS  {f.restored['size']:>12,} bytes  sha256 {f.restored['sha256']}")
        elif f.kind == "structured":
            lines.append(f"{f.name} ({f.format.upper()}, by path; ~ changed, - live only, + at TS only):")
            lines.extend(f"  {line}" for line in f.lines)
        else:
            lines.append(f"{f.name} (binary{', ' + f.note if f.note else ''}):")
            lines.append(f"  live   {f.live['size']:>12,} bytes  sha256 {f.live['sha256']}")
            lines.append(f"  at TS  {f.restored['size']:>12,} bytes  sha256 {f.restored['sha256']}")
        if f.kind == "text" and f.note:
            lines.append(f"  ({f.note})")
        if f.truncated:
            lines.append(f"  ... {f.truncated} more lines (--full shows all)")
    lines.append("")
    lines.append(f"receipt: {result.receipt}")
    lines.append("nothing live was changed; review the files and move what you need by hand")
    return lines


def since_ts_lines(d: Any) -> list[str]:
    """One line per file that changed in live since TS: how, and what the restore did about it."""
    out: list[str] = []
    kinds = {f.name: f for f in d.files}
    # A live file sync would never push is not compared: "deleted since TS"
    # would be false, and invite a copy over it.
    ignored = set(d.ignored_live)
    for name in d.deleted_since_ts:
        if name in ignored:
            out.append(
                f"  {name}: not compared (a live file of that name exists; dr.sync_deny or sync_allow leave it out)"
                " -> its TS copy is in the holding dir"
            )
        else:
            out.append(f"  {name}: deleted since TS -> restored into the holding dir")
    for name in d.created_since_ts:
        out.append(f"  {name}: created since TS -> not in the holding dir (absent at TS); the live file stays")
    compared = {f.name for f in d.files}
    for name in d.live_symlinks:
        if name == "":
            out.append(f"  live dir {d.live_dir} is a symlink, not followed: no live file compared")
        elif name not in compared:
            out.append(f"  {name}: live symlink, not followed, not compared")
    for name in d.changed_since_ts:
        f = kinds[name]
        if f.kind == "symlink":
            out.append(f"  {name}: a symlink in live (not followed) -> its TS copy is in the holding dir")
            continue
        label = f"{f.format.upper()}, structural" if f.kind == "structured" and f.format else f.kind
        out.append(f"  {name}: changed since TS ({label}) -> restored as at TS into the holding dir")
    return out


TASKS = (restore,)
