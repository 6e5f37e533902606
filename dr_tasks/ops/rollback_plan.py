"""`dr.rollback`'s plan: steps 1 to 3 of `ops/rollback.py` (find, label, prove, compare), and no change.

Finds the snapshot in the index, checks its label, proves with ONE listing
of the snapshot dir that every object its manifest names is intact, and
compares the manifest with ONE listing of live: what to copy back, delete,
leave unchanged and preserve. The labels and commands a rollback prints
(its safety snapshot's label, the confirm-label check, the apply and undo
commands) live here too. Nothing here writes; an interruption leaves nothing.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pathspec

from .. import proof
from ..config import DrConfig
from ..errors import DrError
from ..history import snapshot_row
from ..index import Index
from ..layout import LABEL_RULE, snapshot_dir
from ..manifest import Manifest
from ..progress import NULL_PROGRESS, Progress
from ..rewrites import read_rewrites
from ..rows import SnapshotRow
from ..stored_snapshot import load_manifest, prove_snapshot_object, recorded_etags
from ..transport import S3, ObjectVersion
from .snapshot import list_live, validate_label

SAFETY_PREFIX = "pre-rollback-"
# Snapshot labels are at most 63 characters (see LABEL_RULE).
MAX_LABEL = 63
# A safety label too long to fit keeps this many hex digits of the full label's
# sha256, so two long labels that share a beginning still get distinct labels.
_HASH_CHARS = 8
_LABEL_RE = re.compile(LABEL_RULE)


# ---------------------------------------------------------------------- labels
def safety_label(label: str) -> str:
    """The label of the safety snapshot taken before rolling back to a snapshot labelled `label`.

    `pre-rollback-<label>` when that is a valid label. Otherwise (the label is
    longer than 50 characters, or was recorded by a tool that allowed other
    characters) the label is cut (and lowercased, other characters becoming
    '-') to fit 63 characters, and ends with `-<first 8 hex digits of the full
    label's sha256>` so it stays distinct and traceable.
    """
    candidate = SAFETY_PREFIX + label
    if _LABEL_RE.fullmatch(candidate) and ".." not in candidate:
        return candidate
    digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    clean = re.sub(r"[^a-z0-9._-]", "-", label.lower())
    while ".." in clean:
        clean = clean.replace("..", ".")
    budget = MAX_LABEL - len(SAFETY_PREFIX) - 1 - _HASH_CHARS
    clean = clean[:budget].rstrip(".-_")
    return validate_label(f"{SAFETY_PREFIX}{clean}-{digest}" if clean else f"{SAFETY_PREFIX}{digest}")


def _first_difference(a: str, b: str) -> int:
    """Byte offset (UTF-8) of the first difference between two labels."""
    ab, bb = a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    for i, (x, y) in enumerate(zip(ab, bb, strict=False)):
        if x != y:
            return i
    return min(len(ab), len(bb))


def check_confirm_label(recorded: str, given: str | None, snap_id: str) -> None:
    """Refuse unless `given` equals the snapshot's recorded label byte for byte (no trimming, no case folding)."""
    if given is None:
        raise DrError(
            f"--apply needs --confirm-label: snapshot {snap_id} is labelled {recorded!r}, "
            "and no --confirm-label was given; nothing was changed",
            f"type the label to confirm: --confirm-label={shlex.quote(recorded)}",
        )
    if given.encode("utf-8", "surrogatepass") != recorded.encode("utf-8", "surrogatepass"):
        at = _first_difference(given, recorded)
        raise DrError(
            f"--confirm-label {given!r} does not match snapshot {snap_id}'s label {recorded!r} "
            f"(they differ at byte {at}; the label must match byte for byte: no trimming, no case folding); "
            "nothing was changed",
            f"check the snapshot id, then use --confirm-label={shlex.quote(recorded)}",
        )


def rollback_command(
    snap_id: str, label: str, allow_unversioned: bool = False, program: str = "inv dr.rollback"
) -> str:
    """The exact command that applies a rollback to `snap_id`, quoted for a POSIX shell."""
    args = [snap_id, "--apply", f"--confirm-label={label}"]
    if allow_unversioned:
        args.append("--allow-unversioned")
    return " ".join([program, *(shlex.quote(a) for a in args)])


# ---------------------------------------------------------------------- plan
@dataclass(frozen=True)
class PlanItem:
    """One key of the plan, relative to `prefix` (the local path)."""

    key: str
    size: int
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "size": self.size}
        if self.reason:
            d["reason"] = self.reason
        return d


@dataclass
class RollbackPlan:
    """What a rollback to `snapshot` would do to live, computed from one listing of each side."""

    snapshot: str
    label: str
    snapshot_ts: str | None
    bucket: str
    prefix: str
    versioned: bool
    copy: list[PlanItem] = field(default_factory=list)
    delete: list[PlanItem] = field(default_factory=list)
    unchanged: list[PlanItem] = field(default_factory=list)
    preserved: list[PlanItem] = field(default_factory=list)
    # The snapshot-dir object each copy reads from, by plan key (not in to_dict).
    sources: dict[str, ObjectVersion] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.copy) + len(self.delete)

    @property
    def copy_bytes(self) -> int:
        return sum(i.size for i in self.copy)

    @property
    def overwrites(self) -> int:
        return sum(1 for i in self.copy if i.reason == "changed")

    @property
    def needs_allow_unversioned(self) -> bool:
        """Deleting or overwriting on an unversioned bucket destroys data the bucket cannot give back."""
        return not self.versioned and (bool(self.delete) or self.overwrites > 0)

    def apply_command(self, program: str = "inv dr.rollback") -> str:
        return rollback_command(self.snapshot, self.label, self.needs_allow_unversioned, program)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "label": self.label,
            "snapshot_ts": self.snapshot_ts,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "versioned": self.versioned,
            "counts": {
                "copy": len(self.copy),
                "delete": len(self.delete),
                "unchanged": len(self.unchanged),
                "preserved": len(self.preserved),
            },
            "copy_bytes": self.copy_bytes,
            "copy": [i.to_dict() for i in self.copy],
            "delete": [i.to_dict() for i in self.delete],
            "unchanged": [i.to_dict() for i in self.unchanged],
            "preserved": [i.to_dict() for i in self.preserved],
            "warnings": list(self.warnings),
            "needs_allow_unversioned": self.needs_allow_unversioned,
            "apply_command": self.apply_command(),
        }


def preserve_matcher(cfg: DrConfig) -> Callable[[str], bool]:
    """Whether a live path is one a rollback never changes.

    The index is matched by its exact path: read as a gitignore pattern, a
    name with `[...]` is a character class and a trailing space is trimmed, so
    the index itself would be copied over while a sibling it "matches" is kept.
    Every other `preserve` entry is a pattern, read the way the guard reads
    SYNC_ALLOW/SYNC_DENY (gitignore style).
    """
    spec = pathspec.GitIgnoreSpec.from_lines([p for p in cfg.preserve if p != cfg.index])
    return lambda rel: rel == cfg.index or bool(spec.match_file(rel))


def _manifest_objects(cfg: DrConfig, snap_id: str, manifest: Manifest) -> list[dict[str, Any]]:
    """The manifest's objects (their shape checked by `parse_manifest`), checked for keys a rollback may write."""
    if manifest.prefix is not None and manifest.prefix != cfg.prefix:
        raise DrError(
            f"snapshot {snap_id} was taken of prefix {manifest.prefix!r}, but dr.prefix is now {cfg.prefix!r}",
            "roll back with the config the snapshot was taken under",
        )
    for e in manifest.objects:
        # A key that would land in the snapshot prefix or our bookkeeping is
        # not live: a rollback must never write there.
        if not cfg.is_live_key(cfg.key_for(e.key)):
            raise DrError(
                f"the manifest of snapshot {snap_id} names {e.key!r}, which is not a live key",
                "the manifest is damaged; pick another snapshot",
            )
    return [e.to_dict() for e in manifest.objects]


def check_snapshot_objects(
    cfg: DrConfig,
    snap_id: str,
    objects: Sequence[dict[str, Any]],
    listing: Iterable[ObjectVersion],
    s3: S3 | None = None,
    rewrites: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
) -> dict[str, ObjectVersion]:
    """Every manifest object is in the snapshot dir and proven intact, or a DrError naming them.

    `rewrites` may be a loader: it is called only when some object's ETag is
    not the manifest's or its copy's, so a plain plan makes no extra request.
    """
    base = snapshot_dir(cfg, snap_id)
    present = {o.key[len(base) :]: o for o in listing if o.key.startswith(base)}
    problems: list[str] = []
    pending: list[tuple[dict[str, Any], ObjectVersion]] = []
    for m in objects:
        got = present.get(m["key"])
        if got is None:
            problems.append(f"{m['key']} (missing)")
            continue
        p = proof.by_etag(got.size, got.etag_plain, expected_size=m["size"], recorded=recorded_etags(m))
        if p.verdict is proof.UNVERIFIED:
            pending.append((m, got))
        elif not p.proven:
            problems.append(f"{m['key']} ({p.why})")
    if pending and callable(rewrites):
        rewrites = rewrites()
    for m, got in pending:
        p = prove_snapshot_object(s3, cfg.bucket, m, got, rewrites if isinstance(rewrites, dict) else None)
        if not p.proven:
            problems.append(f"{m['key']} ({p.why})")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DrError(
            f"snapshot {snap_id} is incomplete: {len(problems)} of {len(objects)} objects in its manifest are not "
            f"proven intact under s3://{cfg.bucket}/{base}: {shown}; nothing was changed",
            "pick another snapshot with `inv dr.list`, or bring the objects back (a noncurrent version or the "
            "cross-region backup) first",
        )
    return present


def build_plan(
    cfg: DrConfig,
    snap_id: str,
    label: str,
    snapshot_ts: str | None,
    versioned: bool,
    objects: Sequence[dict[str, Any]],
    snapshot_objects: dict[str, ObjectVersion],
    live: Iterable[ObjectVersion],
) -> RollbackPlan:
    """Compare the manifest with live by ETag and size: no request is made here."""
    keep = preserve_matcher(cfg)
    plan = RollbackPlan(snap_id, label, snapshot_ts, cfg.bucket, cfg.prefix, versioned)
    live_by_rel = {cfg.rel_for(o.key): o for o in live if cfg.is_live_key(o.key)}
    wanted = {m["key"]: m for m in objects}
    for rel in sorted(set(wanted) | set(live_by_rel)):
        m, cur = wanted.get(rel), live_by_rel.get(rel)
        if keep(rel):
            size = cur.size if cur is not None else (m["size"] if m else 0)
            plan.preserved.append(PlanItem(rel, size))
        elif m is None:
            assert cur is not None
            plan.delete.append(PlanItem(rel, cur.size, "not in snapshot"))
        elif cur is None:
            plan.copy.append(PlanItem(rel, m["size"], "missing"))
            plan.sources[rel] = snapshot_objects[rel]
        else:
            # Live matches when its ETag is the recorded one or the snapshot
            # copy's: after a rollback live holds a copy of the copy, and a
            # server-side copy of a multipart object gets either the MD5 of
            # the bytes (AWS, moto) or the source's multipart ETag (Ceph RGW).
            # So a snapshot object `dr.recover` brought back as a multipart
            # upload, once rolled back, matches one of the two and is not
            # copied again. Unlike the snapshot check, size alone never
            # excuses live: a same-size edit pushed as a multipart upload
            # must still be copied back.
            etags = {m["etag"], snapshot_objects[rel].etag_plain}
            if cur.size == m["size"] and cur.etag_plain in etags:
                plan.unchanged.append(PlanItem(rel, cur.size))
            else:
                plan.copy.append(PlanItem(rel, m["size"], "changed"))
                plan.sources[rel] = snapshot_objects[rel]
    return plan


def plan_against_live(
    cfg: DrConfig, s3: S3, snap_id: str, label: str, row: SnapshotRow, progress: Progress
) -> RollbackPlan:
    """Steps 2 and 3: prove the snapshot's objects, then compare them with live as it is now. Changes nothing."""
    versioned = s3.versioning(cfg.bucket) == "Enabled"
    manifest = load_manifest(cfg, s3, snap_id)
    objects = _manifest_objects(cfg, snap_id, manifest)
    progress.start(f"checking snapshot {snap_id}")
    try:
        # ONE listing of the snapshot dir checks every object: no HEAD per object.
        # An object whose ETag is not a recorded one is re-read and hashed.
        present = check_snapshot_objects(
            cfg,
            snap_id,
            objects,
            s3.iter_objects(cfg.bucket, snapshot_dir(cfg, snap_id)),
            s3,
            lambda: read_rewrites(cfg, s3),
        )
        progress.start("listing live keys")
        live = list_live(cfg, s3, versioned, progress)
    finally:
        progress.stop()
    return build_plan(cfg, snap_id, label, row.ts, versioned, objects, present, live)


def label_of(row: SnapshotRow, snap_id: str) -> str:
    label = row.label
    if label is None:
        raise DrError(f"the index row of snapshot {snap_id} records no label", "pick another snapshot")
    return label


def plan_rollback(
    cfg: DrConfig, snap_id: str, *, s3: S3 | None = None, progress: Progress = NULL_PROGRESS
) -> RollbackPlan:
    """What `dr.rollback ID --apply` would do now. Changes nothing."""
    row = snapshot_row(cfg, snap_id)
    label = label_of(row, snap_id)
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    plan = plan_against_live(cfg, s3, snap_id, label, row, progress)
    plan.warnings.extend(index_warnings(cfg))
    return plan


def index_warnings(cfg: DrConfig) -> list[str]:
    bad = Index(cfg.index_path).read().bad_summary()
    return [bad] if bad else []
