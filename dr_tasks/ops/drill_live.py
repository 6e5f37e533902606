"""`dr.drill --live`: proof, on the configured buckets, that a snapshot comes back byte for byte.

It only reads: the index, the snapshot's manifest (in the primary), a listing
of the snapshot's copy in the source (the backup bucket, or with
`source="primary"` the primary's snapshot prefix) and GETs. No lease, nothing
written to either bucket or to live files; what comes back lands in a holding
dir under `restore_dir` (gitignored and denied, checked first), removed
afterwards unless `keep`. One `drill` row is appended to the index, pass or fail.

Steps, each timed (the row keeps them, `report_html` draws them):
1. read the manifest: the snapshot (newest in the index not pruned, or
   `snapshot_id`), its manifest, a listing of its copy in the source; every
   manifest key must be there and nothing else (the object count);
2. bring back: every object (or, with `sample`, those of N units drawn with
   `seed`) through the restore engine into the holding dir;
3. check every byte (`drill_proof`): against the manifest's sha256, else the
   MD5 of the bytes against a recorded single-part ETag, else against the
   primary's version the manifest names; an ETag's shape or a size never passes;
4. point in time: one of those units restored from the primary's versions at
   the snapshot's instant (`ops.restore`), compared with step 2's bytes.

A refusal (bad options, no backup configured, no snapshot, a holding dir git
would not ignore) raises DrError before any request and writes no row.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..history import newest_snapshot, pruned_ids, snapshot_row
from ..index import Index, utc_now
from ..layout import snapshot_dir
from ..manifest import Manifest, ManifestEntry
from ..progress import NullProgress
from ..rows import DrillRow, DrillStepRow
from ..stored_snapshot import load_manifest
from ..timeparse import compact_utc, iso_utc
from ..transport import S3, ObjectVersion
from .drill import Step
from .drill_proof import FailedKey, ProofInput, prove_fetched
from .restore import restore_at
from .restore.download import fetch_each
from .restore.holding import check_holding_free
from .restore.results import RefusedKey, RestoredFile
from .restore.scope import check_restore_dir

SOURCES = ("backup", "primary")
READ_STEP, FETCH_STEP, CHECK_STEP = "read the manifest", "bring back", "check every byte"
# The steps between "we need the data" and "we have it, proven": the measured RTO.
RECOVERY_STEPS = (READ_STEP, FETCH_STEP, CHECK_STEP)


@dataclass(frozen=True)
class LiveDrillOptions:
    snapshot_id: str | None = None
    source: str = "backup"
    # Units to check, drawn at random with `seed` (None: every object).
    sample: int | None = None
    seed: int | None = None
    keep: bool = False
    now: datetime | None = None


@dataclass
class LiveDrillResult:
    id: str
    ts: str
    snapshot: str
    source: str
    where: str
    seed: int
    sample: int | None
    steps: list[Step] = field(default_factory=list)
    objects: int = 0
    checked: int = 0
    bytes: int = 0
    failed: list[FailedKey] = field(default_factory=list)
    unit: str | None = None
    ttfb_seconds: float | None = None
    seconds: float = 0.0
    holding: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps) and not self.failed

    @property
    def rto_seconds(self) -> float:
        return round(sum(s.seconds for s in self.steps if s.name in RECOVERY_STEPS), 3)

    @property
    def title(self) -> str:
        return f"live drill of snapshot {self.snapshot} from the {self.source} ({self.where})"

    def row(self) -> DrillRow:
        steps = tuple(DrillStepRow(s.name, s.seconds, s.ok, s.bytes) for s in self.steps)
        keys = tuple(f.key for f in self.failed)
        return DrillRow(
            self.id, self.ts, self.snapshot, self.source, self.objects, self.bytes, self.ok, keys, len(keys),
            self.checked, self.sample, self.seed, self.ttfb_seconds, self.rto_seconds, self.seconds, steps, {},
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "id": self.id,
            "snapshot": self.snapshot,
            "source": self.source,
            "where": self.where,
            "objects": self.objects,
            "checked": self.checked,
            "bytes": self.bytes,
            "sample": self.sample,
            "seed": self.seed,
            "unit": self.unit,
            "failed": [f.key for f in self.failed],
            "failures": [{"key": f.key, "why": f.why} for f in self.failed],
            "ttfb_seconds": self.ttfb_seconds,
            "rto_seconds": self.rto_seconds,
            "seconds": self.seconds,
            "steps": [{"name": s.name, "seconds": s.seconds, "ok": s.ok, "bytes": s.bytes, "detail": s.detail}
                      for s in self.steps],
            "holding": self.holding,
        }  # fmt: skip


class _FirstByte(NullProgress):
    """A Progress that notes when the first object came back (time to first byte); says nothing."""

    def __init__(self) -> None:
        self.at: float | None = None

    def advance(self, n: int = 1) -> None:
        if self.at is None:
            self.at = time.monotonic()


@dataclass
class _Plan:
    cfg: DrConfig
    snap_id: str
    src_cfg: DrConfig  # the source's endpoint as `cfg.endpoint`
    key_prefix: str  # where the snapshot's copies are in the source bucket
    holding: Path


def _refuse_options(options: LiveDrillOptions) -> None:
    if options.source not in SOURCES:
        raise DrError(f"--source must be one of {', '.join(SOURCES)}, got {options.source!r}", "use --source=backup")
    if options.sample is not None and options.sample < 1:
        raise DrError(
            f"--sample must be a whole number of units of at least 1, got {options.sample}", "e.g. --sample=5"
        )


def plan_live_drill(cfg: DrConfig, options: LiveDrillOptions, now: datetime) -> _Plan:
    """Everything refused before a request: options, the source, the snapshot, the holding dir."""
    _refuse_options(options)
    if options.snapshot_id:
        snap_id = snapshot_row(cfg, options.snapshot_id).id
    else:
        read = Index(cfg.index_path).read()
        gone = pruned_ids(read)
        kept = replace(read, rows=[r for r in read.rows if not (r.get("kind") == "snapshot" and r.get("id") in gone)])
        newest = newest_snapshot(kept)
        if newest is None:
            raise DrError(
                f"no snapshot row in {cfg.index}: nothing to drill", "take one: `inv dr.snapshot --label=...`"
            )
        snap_id = newest.id
    if options.source == "backup":
        ep = cfg.backup.endpoint
        if ep is None:
            raise DrError(
                "the live drill reads the cold copy, and dr.backup.bucket is not set",
                "configure dr.backup (bucket, endpoint_url) and run `inv dr.backup`, or drill the primary's copy "
                "with --source=primary",
            )
        src_cfg, key_prefix = cfg.with_endpoint(ep), cfg.backup.prefix + snapshot_dir(cfg, snap_id)
    else:
        src_cfg, key_prefix = cfg, snapshot_dir(cfg, snap_id)
    name = f"drill-{compact_utc(now)}"
    check_restore_dir(cfg, name)
    holding = cfg.restore_path / name
    check_holding_free(cfg, holding, False)
    return _Plan(cfg, snap_id, src_cfg, key_prefix, holding)


def run_live_drill(
    cfg: DrConfig,
    options: LiveDrillOptions,
    *,
    s3: S3 | None = None,
    source_s3: S3 | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> LiveDrillResult:
    """Run the drill (see the module's docstring); the row is appended whatever the verdict."""
    now = (options.now or utc_now()).replace(microsecond=0)
    plan = plan_live_drill(cfg, options, now)
    Index(cfg.index_path).check_writable()
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    if source_s3 is None:
        source_s3 = s3 if options.source == "primary" else S3(plan.src_cfg.endpoint, cfg.concurrency)
    where = f"s3://{plan.src_cfg.bucket}/{plan.key_prefix}"
    iso = iso_utc(now, whole_seconds=True)
    result = LiveDrillResult(f"drill-{iso}", iso, plan.snap_id, options.source, where, seed, options.sample)
    started = time.monotonic()
    try:
        _LiveDrill(plan, options, s3, source_s3, result, on_step).run()
    finally:
        result.seconds = round(time.monotonic() - started, 3)
        if options.keep and plan.holding.exists():
            result.holding = str(plan.holding)
        else:
            shutil.rmtree(plan.holding, ignore_errors=True)
    Index(cfg.index_path).append(result.row().format())
    return result


class _StepFailed(Exception):
    pass


class _LiveDrill:
    """The steps of one live drill, in order, and what each hands the next."""

    def __init__(
        self,
        plan: _Plan,
        options: LiveDrillOptions,
        s3: S3,
        source_s3: S3,
        result: LiveDrillResult,
        on_step: Callable[[Step], None] | None,
    ) -> None:
        self.plan, self.options, self.s3, self.source_s3 = plan, options, s3, source_s3
        self.result, self.on_step = result, on_step
        self.cfg = plan.cfg
        self.manifest: Manifest | None = None
        self.listed: dict[str, ObjectVersion] = {}
        self.chosen: list[ManifestEntry] = []
        self.fetched: dict[str, RestoredFile] = {}
        self.units: list[str] = []

    def run(self) -> None:
        for name, fn in (
            (READ_STEP, self.read),
            (FETCH_STEP, self.fetch),
            (CHECK_STEP, self.check),
            ("point in time", self.point_in_time),
        ):
            if not self._step(name, fn):
                break

    def _step(self, name: str, fn: Callable[[], tuple[str, int]]) -> bool:
        t0 = time.monotonic()
        nbytes = 0
        try:
            detail, nbytes = fn()
            ok = True
        except (DrError, _StepFailed) as err:
            detail, ok = str(err), False
        if name == "point in time" and self.units:
            name = f"point in time: {self.units[0]}"
        step = Step(name, round(time.monotonic() - t0, 3), ok, detail, nbytes)
        self.result.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        return ok

    def _fail(self, key: str, why: str) -> None:
        self.result.failed.append(FailedKey(key, why))

    def _unit_of(self, rel: str) -> str | None:
        units = self.cfg.units
        if not rel.startswith(units) or "/" not in rel[len(units) :]:
            return None
        return rel[len(units) :].split("/", 1)[0]

    def read(self) -> tuple[str, int]:
        cfg, plan = self.cfg, self.plan
        m = self.manifest = load_manifest(cfg, self.s3, plan.snap_id)
        self.result.objects = len(m.objects)
        self.listed = {
            o.key[len(plan.key_prefix) :]: o for o in self.source_s3.iter_objects(plan.src_cfg.bucket, plan.key_prefix)
        }
        want = {e.key for e in m.objects}
        for rel in sorted(want - set(self.listed)):
            self._fail(rel, f"missing from {self.result.where}")
        for rel in sorted(set(self.listed) - want):
            self._fail(rel, f"in {self.result.where} but not in the manifest")
        rng = random.Random(self.result.seed)
        by_unit: dict[str, list[ManifestEntry]] = {}
        for e in m.objects:
            unit = self._unit_of(e.key)
            if unit is not None:
                by_unit.setdefault(unit, []).append(e)
        units = sorted(by_unit)
        if self.options.sample is not None:
            units = sorted(rng.sample(units, min(self.options.sample, len(units))))
            self.chosen = [e for u in units for e in by_unit[u]]
        else:
            self.chosen = list(m.objects)
        self.units = [rng.choice(units)] if units else []
        if self.result.failed:
            raise _StepFailed(
                f"{len(self.listed)} objects in {self.result.where}, the manifest lists {len(want)}: "
                + ", ".join(f"{f.key} ({f.why})" for f in self.result.failed[:5])
            )
        sampled = f"; {len(units)} unit(s) drawn with seed {self.result.seed}" if self.options.sample else ""
        return f"{len(want)} objects, {m.bytes} bytes in the manifest, all in {self.result.where}{sampled}", 0

    def fetch(self) -> tuple[str, int]:
        plan = self.plan
        refused: list[RefusedKey] = []
        first = _FirstByte()
        t0 = time.monotonic()
        items = [(e.key, self.listed[e.key]) for e in self.chosen]
        # The source's copies go under the holding dir; the restore's own checks (path safety, size, MD5 ETag) apply.
        src_cfg = replace(plan.src_cfg, restore_dir=f"{self.cfg.restore_dir}/{plan.holding.name}")
        target = plan.holding / self.options.source
        target.mkdir(parents=True)
        done, failed = fetch_each(src_cfg, self.source_s3, target, items, refused, first)
        if first.at is not None:
            self.result.ttfb_seconds = round(first.at - t0, 3)
        self.fetched = {f.name: f for f in done}
        for r in refused:
            self._fail(r.key[len(plan.key_prefix) :], r.reason)
        for f in failed:
            self._fail(f.item[0], f.error.message)
        self.result.bytes = sum(f.size for f in done)
        if refused or failed:
            raise _StepFailed(
                f"{len(refused) + len(failed)} of {len(items)} objects did not come back: {self._named()}"
            )
        return f"{len(done)} objects, {self.result.bytes} bytes into {self.cfg.restore_dir}/{plan.holding.name}/", (
            self.result.bytes
        )

    def _named(self) -> str:
        shown = self.result.failed[:5]
        more = f" and {len(self.result.failed) - 5} more" if len(self.result.failed) > 5 else ""
        return "; ".join(f"{f.key}: {f.why}" for f in shown) + more

    def check(self) -> tuple[str, int]:
        target = self.plan.holding / self.options.source
        inputs = [ProofInput(e, target / e.key, self.fetched[e.key].sha256) for e in self.chosen]
        bad = prove_fetched(self.cfg, self.s3, inputs)
        self.result.checked = len(inputs)
        self.result.failed.extend(bad)
        if bad:
            raise _StepFailed(f"{len(bad)} of {len(inputs)} objects are not the bytes recorded: {self._named()}")
        return f"every byte of {len(inputs)} objects matches the manifest", 0

    def point_in_time(self) -> tuple[str, int]:
        """One unit from the primary's versions at the snapshot's instant: the other recovery path must agree."""
        if not self.units:
            return "the snapshot has no units; skipped", 0
        cfg, plan, unit = self.cfg, self.plan, self.units[0]
        at = self._instant()
        pit_cfg = replace(cfg, restore_dir=f"{cfg.restore_dir}/{plan.holding.name}")
        r = restore_at(pit_cfg, at, unit=unit, s3=self.s3)
        got = {cfg.units + unit + "/" + f.name: f for f in r.restored}
        want = {e.key: e for e in self.chosen if self._unit_of(e.key) == unit}
        bad = [FailedKey(k, "in the snapshot, not in the point-in-time restore") for k in sorted(set(want) - set(got))]
        bad += [FailedKey(k, "in the point-in-time restore, not in the snapshot") for k in sorted(set(got) - set(want))]
        bad += [
            FailedKey(k, f"the point-in-time restore (version {got[k].version_id}) differs from the snapshot's copy")
            for k in sorted(set(got) & set(want))
            if got[k].sha256 != self.fetched[k].sha256
        ]
        self.result.failed.extend(bad)
        if bad:
            raise _StepFailed(f"restore at {iso_utc(at)} and the snapshot disagree: " + self._named())
        return f"{len(got)} objects as at {iso_utc(at)} from s3://{cfg.bucket}, byte-identical to the snapshot", sum(
            f.size for f in got.values()
        )

    def _instant(self) -> datetime:
        """The snapshot's instant: its listing came after its id's time and after every version it copied.

        Manifests keep whole seconds, so the instant is the last one's second,
        to its end: every version listed has LastModified at or before it.
        """
        m = self.manifest
        assert m is not None  # the read step ran
        latest = datetime.fromisoformat(m.ts.replace("Z", "+00:00"))
        for e in m.objects:
            if e.last_modified:
                try:
                    latest = max(latest, datetime.fromisoformat(e.last_modified.replace("Z", "+00:00")))
                except ValueError:
                    continue
        return latest.replace(microsecond=0) + timedelta(seconds=1) - timedelta(microseconds=1)
