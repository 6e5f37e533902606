"""`dr.drill`: a full recovery exercise on an embedded S3 server and a scratch copy of state/.

It never touches the repo's own files or its real bucket: it copies `state/`
(or generates sample data where the repo has none) into a temp dir, seeds a
fresh versioned bucket on moto's server on 127.0.0.1, and runs the real
operations against it, timing each step and checking every byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import config as config_mod
from ..config import DrConfig
from ..embedded import ACCESS_KEY, SECRET_KEY, EmbeddedS3
from ..errors import DrError
from ..guard import Guard
from ..layout import snapshot_dir
from ..parallel import run_parallel
from ..progress import NULL_PROGRESS, Progress
from ..timeparse import iso_utc
from ..transport import S3
from .backup import run_backup
from .recover import recover_from_backup
from .restore import restore_at
from .rollback import apply_rollback
from .snapshot import SnapshotResult, take_snapshot
from .verify import run_verify
from .versioning import enable_versioning

PRIMARY_BUCKET = "dr-drill-primary"
BACKUP_BUCKET = "dr-drill-backup"
RECOVERY_STEPS = ("restore a unit", "rollback to the snapshot", "recover it from the backup")


@dataclass
class Step:
    name: str
    seconds: float
    ok: bool
    detail: str = ""
    # Bytes the step brought back (what the report draws); 0 for steps that bring nothing back.
    bytes: int = 0


@dataclass
class DrillResult:
    steps: list[Step] = field(default_factory=list)
    bytes_lost: int = 0
    seconds: float = 0.0
    scratch: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps) and self.bytes_lost == 0

    @property
    def rto_seconds(self) -> float:
        """Time to recover: the steps that bring data back (restore, rollback, recover)."""
        return round(sum(s.seconds for s in self.steps if s.name in RECOVERY_STEPS), 3)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "rto_seconds": self.rto_seconds}


class _StepFailed(Exception):
    pass


def sample_state(root: Path) -> None:
    """Generate a small substrate: two units of text, JSON and binary files, and an index."""
    units: dict[str, dict[str, str | bytes]] = {
        "snappy-image": {
            "README.md": "# snappy-image\n\nResizes images quickly.\n",
            "config.json": json.dumps({"quality": 85, "formats": ["png", "jpeg"]}, indent=2) + "\n",
            "model.bin": bytes(range(256)) * 64,
        },
        "notes": {
            "todo.txt": "".join(f"item {i}\n" for i in range(50)),
            "settings.yaml": "retries: 3\nmode: fast\n",
            "deep/nested/data.ndjson": "".join(json.dumps({"n": i}) + "\n" for i in range(20)),
        },
    }
    for unit, files in units.items():
        for name, content in files.items():
            path = root / "state" / "skills" / unit / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
    (root / "state" / "log").mkdir(parents=True, exist_ok=True)
    (root / "state" / "log" / "snapshots.ndjson").touch()


def _local_files(cfg: DrConfig, guard: Guard) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(cfg.root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", cfg.restore_dir))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(cfg.root).as_posix()
            if guard.allow.match_file(rel) and not guard.is_denied(rel):
                yield path


def _unit_of(cfg: DrConfig, key: str) -> str | None:
    rel = cfg.rel_for(key)
    if not rel.startswith(cfg.units):
        return None
    rest = rel[len(cfg.units) :]
    return rest.split("/", 1)[0] if "/" in rest else None


def _live_bytes(cfg: DrConfig, s3: S3) -> dict[str, bytes]:
    listing = s3.iter_objects(cfg.bucket, cfg.prefix, cfg.reserved_prefixes())
    keys = [o.key for o in listing if cfg.is_live_key(o.key)]
    done, failed = run_parallel(lambda k: s3.get_bytes(cfg.bucket, k), keys, cfg.concurrency)
    if failed:
        raise _StepFailed(f"cannot read back {failed[0].item}: {failed[0].error}")
    return dict(done)


def _bytes_lost(original: dict[str, bytes], now: dict[str, bytes], skip: AbstractSet[str] = frozenset()) -> int:
    """Bytes of the pre-damage state that are not back exactly as they were."""
    return sum(len(data) for key, data in original.items() if key not in skip and now.get(key) != data)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_drill(
    source_root: Path,
    raw: dict[str, Any],
    *,
    keep: bool = False,
    on_step: Callable[[Step], None] | None = None,
    progress: Progress = NULL_PROGRESS,
) -> DrillResult:
    """Run the exercise. `raw` is the host's `dr` config: its layout keys are honoured, its bucket is not used."""
    result = DrillResult()
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="dr-drill-"))
    try:
        with EmbeddedS3() as url, EmbeddedS3() as backup_url:
            cfg = _drill_config(raw, scratch, url, backup_url)
            drill = _Drill(source_root, scratch, cfg, url, backup_url, result, progress)
            for name, fn in drill.steps():
                if not _run_step(result, name, fn, on_step):
                    break
    finally:
        result.seconds = round(time.monotonic() - started, 3)
        if keep:
            result.scratch = str(scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return result


def _run_step(
    result: DrillResult, name: str, fn: Callable[[], str | tuple[str, int]], on_step: Callable[[Step], None] | None
) -> bool:
    """Time one step and record it; False when it failed (the drill stops there)."""
    t0 = time.monotonic()
    nbytes = 0
    try:
        out, ok = fn(), True
        detail, nbytes = out if isinstance(out, tuple) else (out, 0)
    except (DrError, _StepFailed) as err:
        detail, ok = str(err), False
    s = Step(name, round(time.monotonic() - t0, 3), ok, detail, nbytes)
    result.steps.append(s)
    if on_step:
        on_step(s)
    return ok


def _drill_config(raw: dict[str, Any], scratch: Path, url: str, backup_url: str) -> DrConfig:
    """The host's layout keys, on the two embedded servers, rooted in the scratch dir."""
    layout = {
        k: raw[k]
        for k in ("units", "index", "restore_dir", "sync_allow", "sync_deny", "preserve", "concurrency")
        if raw.get(k) is not None
    }
    cfg = config_mod.load(
        {
            **layout,
            "bucket": PRIMARY_BUCKET,
            "endpoint_url": url,
            "region": "us-east-1",
            "backup": {
                "bucket": BACKUP_BUCKET,
                "endpoint_url": backup_url,
                "region": "us-east-1",
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
            },
        },
        scratch,
    )
    return cfg.with_endpoint(replace(cfg.endpoint, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY))


class _Drill:
    """The steps of one exercise, in order, and what each hands the next; every byte is checked against `original`."""

    def __init__(
        self,
        source_root: Path,
        scratch: Path,
        cfg: DrConfig,
        url: str,
        backup_url: str,
        result: DrillResult,
        progress: Progress = NULL_PROGRESS,
    ) -> None:
        self.source_root, self.scratch, self.cfg, self.result = source_root, scratch, cfg, result
        # Each step's operation shows its own phases on it (a long recover is not silent).
        self.progress = progress
        self.url, self.backup_url = url, backup_url
        self.s3 = S3(cfg.endpoint, cfg.concurrency)
        self.guard = Guard(cfg)
        # Key -> bytes of the seeded (pre-damage) state.
        self.original: dict[str, bytes] = {}
        self.snapshot: SnapshotResult | None = None
        self.before_damage = datetime.now(timezone.utc)
        self.overwritten: list[str] = []
        self.deleted: list[str] = []

    def steps(self) -> list[tuple[str, Callable[[], str | tuple[str, int]]]]:
        return [
            ("prepare scratch state", self.prepare),
            ("seed bucket", self.seed),
            ("snapshot", self.snap),
            ("mark restore point", self.mark_time),
            ("damage live", self.damage),
            ("check snapshot bytes", self.check_snapshot),
            ("restore a unit", self.restore_unit),
            ("rollback to the snapshot", self.rollback),
            ("back up to a second region", self.backup),
            ("lose the primary bucket", self.lose_primary),
            ("recover it from the backup", self.recover),
            ("verify", self.verify),
        ]

    def _lost(self, lost: int) -> int:
        self.result.bytes_lost = max(self.result.bytes_lost, lost)
        return lost

    def _snapshot(self) -> SnapshotResult:
        assert self.snapshot is not None  # the "snapshot" step ran
        return self.snapshot

    def prepare(self) -> str:
        src_state = self.source_root / "state"
        if src_state.is_dir() and any(p.is_file() for p in src_state.rglob("*")):
            shutil.copytree(src_state, self.scratch / "state", symlinks=True)
            how = f"copied {src_state}"
        else:
            sample_state(self.scratch)
            how = "generated sample data (the repo has no state/)"
        (self.scratch / ".gitignore").write_text(f"{self.cfg.restore_dir}/\n")
        return how

    def seed(self) -> str:
        cfg, s3, guard = self.cfg, self.s3, self.guard
        s3.create_bucket(cfg.bucket, versioned=True)
        v = enable_versioning(cfg, s3)
        if not v.ok:
            raise _StepFailed(f"versioning is not as configured: {v.to_dict()}")
        files = list(_local_files(cfg, guard))

        def up(path: Path) -> int:
            permit = guard.check_upload(path)
            s3.upload_file(permit, cfg.bucket, cfg.key_for(permit.rel))
            return path.stat().st_size

        done, failed = run_parallel(up, files, cfg.concurrency)
        if failed:
            raise _StepFailed(f"{len(failed)} uploads failed: {failed[0].error}")
        for path in files:
            self.original[cfg.key_for(path.relative_to(cfg.root).as_posix())] = path.read_bytes()
        return f"{len(done)} files, {sum(n for _, n in done)} bytes into a versioned bucket at {self.url}"

    def snap(self) -> str:
        r = self.snapshot = take_snapshot(self.cfg, "drill", s3=self.s3, progress=self.progress)
        return f"{r.id}: {r.objects} objects, {r.bytes} bytes"

    def mark_time(self) -> str:
        # Restore picks versions by LastModified <= TS at one-second
        # precision: wait until the seeded versions are strictly older
        # than a whole second that damage will come after.
        t = datetime.now(timezone.utc)
        self.before_damage = t.replace(microsecond=0) + timedelta(seconds=1)
        time.sleep(max(0.0, (self.before_damage - t).total_seconds()) + 1.05)
        return f"restore point {iso_utc(self.before_damage, whole_seconds=True)}"

    def damage(self) -> str:
        cfg, s3 = self.cfg, self.s3
        keys = sorted(k for k in self.original if k != cfg.key_for(cfg.index))
        self.overwritten = keys[0::3]
        self.deleted = keys[1::3]
        for k in self.overwritten:
            s3.put_bytes(cfg.bucket, k, b"corrupted by the drill\n")
        s3.delete_keys(cfg.bucket, self.deleted)
        s3.put_bytes(cfg.bucket, cfg.key_for("state/skills/intruder/new.txt"), b"should not be here\n")
        return f"overwrote {len(self.overwritten)}, deleted {len(self.deleted)}, added 1"

    def check_snapshot(self) -> str:
        cfg, s3, original = self.cfg, self.s3, self.original
        snap_dir = snapshot_dir(cfg, self._snapshot().id)

        def compare(key: str) -> int:
            got = s3.get_bytes(cfg.bucket, snap_dir + cfg.rel_for(key))
            return 0 if _digest(got) == _digest(original[key]) else len(original[key])

        done, failed = run_parallel(compare, sorted(original), cfg.concurrency)
        lost = self._lost(sum(n for _, n in done) + sum(len(original[f.item]) for f in failed))
        if lost:
            raise _StepFailed(f"{lost} bytes differ between the snapshot and the pre-damage state")
        return f"every byte of {len(original)} objects matches the pre-damage state"

    def restore_unit(self) -> str | tuple[str, int]:
        cfg, original = self.cfg, self.original
        damaged_units = sorted(
            {u for u in (_unit_of(cfg, k) for k in self.overwritten + self.deleted) if u is not None}
        )
        if not damaged_units:
            return "no unit was damaged (the repo has no units); skipped"
        unit = damaged_units[0]
        live_before = _tree(cfg.root / "state")
        r = restore_at(cfg, self.before_damage, unit=unit, progress=self.progress)
        if _tree(cfg.root / "state") != live_before:
            raise _StepFailed("the restore changed live local files")
        holding = Path(r.holding_path)
        unit_keys = {k for k in original if _unit_of(cfg, k) == unit}
        got = {
            cfg.key_for(cfg.units + unit + "/" + p.relative_to(holding).as_posix()): p.read_bytes()
            for p in holding.rglob("*")
            if p.is_file()
        }
        lost = self._lost(sum(len(original[k]) for k in unit_keys if got.get(k) != original[k]))
        if lost or set(got) != unit_keys:
            raise _StepFailed(f"restore of unit {unit} differs from the pre-damage state ({lost} bytes)")
        return f"unit {unit}: {len(got)} files as at {r.ts}, byte-identical; live untouched", sum(
            map(len, got.values())
        )

    def rollback(self) -> tuple[str, int]:
        cfg, s3 = self.cfg, self.s3
        r = apply_rollback(cfg, self._snapshot().id, self._snapshot().label, s3=s3, progress=self.progress)
        live = _live_bytes(cfg, s3)
        lost = self._lost(_bytes_lost(self.original, live, skip={cfg.key_for(cfg.index)}))
        extra = set(live) - set(self.original)
        if lost or extra:
            raise _StepFailed(f"after rollback {lost} bytes differ and {len(extra)} extra keys remain")
        return (
            f"copied {r.copied}, deleted {r.deleted}; live equals the snapshot (safety {r.safety_snapshot})",
            sum(len(self.original[k]) for k in self.overwritten + self.deleted),
        )

    def backup(self) -> str:
        cfg = self.cfg
        assert cfg.backup.endpoint is not None  # set by _drill_config
        S3(cfg.backup.endpoint, cfg.concurrency).create_bucket(BACKUP_BUCKET, versioned=True)
        r = run_backup(cfg, src=self.s3, progress=self.progress)
        if r.partial:
            raise _StepFailed(f"backup was partial: {r.failed[:3]}")
        return f"{r.copied} objects, {r.bytes} bytes streamed to the second region ({self.backup_url})"

    def lose_primary(self) -> str:
        cfg, s3 = self.cfg, self.s3
        versions = [(v.key, v.version_id) for v in s3.iter_versions(cfg.bucket, "")]
        errors = s3.delete_versions(cfg.bucket, versions)
        if errors:
            raise _StepFailed(f"could not empty the primary: {errors[0]}")
        s3.call("DeleteBucket", cfg.bucket, None, s3.client.delete_bucket, Bucket=cfg.bucket)
        return f"deleted {len(versions)} versions and the bucket itself"

    def recover(self) -> tuple[str, int]:
        cfg, s3 = self.cfg, self.s3
        r = recover_from_backup(cfg, apply=True, create_bucket=True, primary=s3, progress=self.progress)
        if not r.ok:
            raise _StepFailed(f"{len(r.failed)} objects failed to come back: {r.errors[:1]}")
        v = enable_versioning(cfg, s3)
        if not v.ok:
            raise _StepFailed("versioning could not be set up on the recovered bucket")
        live = _live_bytes(cfg, s3)
        lost = self._lost(_bytes_lost(self.original, live, skip={cfg.key_for(cfg.index)}))
        if lost:
            raise _StepFailed(f"{lost} bytes of live state did not come back")
        return f"{r.copied} objects ({r.bytes} bytes) back from the backup; live byte-identical", r.bytes

    def verify(self) -> str:
        r = run_verify(self.cfg, deep=True, s3=self.s3, progress=self.progress)
        if not r.ok:
            raise _StepFailed("; ".join(f"{c.name}: {c.detail}" for c in r.failed))
        return f"{len(r.checks)} checks pass on the recovered bucket (deep: snapshot sha256s match)"
