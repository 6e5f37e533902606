"""The engine: how bulk per-object work is done for one endpoint, chosen once (`engine_for`).

Two engines behind one interface, as s3transfer's TransferManager and
CRTTransferManager: `Boto3Engine` (botocore calls on threads) and `CrtEngine`
(awscrt for what it does faster: server-side copies up to 5 GiB, exact-version
downloads, cross-endpoint copies of small objects; everything else falls
through to boto3). Every operation does its bulk work through an engine:
snapshot and rollback (`copy_versions`), restore (`download_versions`),
backup and recover (`copy_from`). Each reports per item; the checks are the
same on both (`checks`, `reads.read_with_retries`).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import DrError
from ..parallel import Failure, run_parallel
from ..progress import NULL_PROGRESS, Progress
from .jobs import CopyJob, GetJob, ServerCopyJob, SourceGrew, WriteFailed
from .model import ObjectVersion, StreamedObject
from .s3 import S3

if TYPE_CHECKING:
    from .crt_engine import BulkS3

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    """What every engine offers; each operation's bulk work goes through one."""

    name: str
    s3: S3

    def download_versions(self, jobs: Iterable[GetJob[T]]) -> Iterator[tuple[GetJob[T], str | DrError]]: ...

    def copy_versions(
        self, bucket: str, items: Sequence[tuple[T, ObjectVersion, str]], progress: Progress = NULL_PROGRESS
    ) -> tuple[list[tuple[T, int, str]], list[Failure[T]]]: ...

    def copy_from(
        self,
        src: Engine,
        items: Sequence[tuple[ObjectVersion, CopyJob[T]]],
        part_size: int,
        streams: int,
        progress: Progress = NULL_PROGRESS,
        on_copied: Callable[[T, StreamedObject], None] | None = None,
    ) -> tuple[list[tuple[T, StreamedObject]], list[Failure[T]]]: ...


class Boto3Engine:
    """Bulk work as botocore calls, `concurrency` at a time."""

    name = "boto3"

    def __init__(self, s3: S3, concurrency: int) -> None:
        self.s3 = s3
        self.concurrency = max(1, concurrency)

    def download_versions(self, jobs: Iterable[GetJob[T]]) -> Iterator[tuple[GetJob[T], str | DrError]]:
        """Fetch each job's exact version into its `dest`; yield (job, SHA-256 hex) or (job, error), as each ends."""

        def fetch(job: GetJob[T]) -> str:
            try:
                sha = self.s3.download_version(job.bucket, job.obj, job.dest)
                if job.mtime is not None:
                    _set_mtime(job, job.mtime)
            except OSError as err:
                raise WriteFailed(job, err) from None
            return sha

        yield from _as_completed(fetch, jobs, self.concurrency)

    def copy_versions(
        self, bucket: str, items: Sequence[tuple[T, ObjectVersion, str]], progress: Progress = NULL_PROGRESS
    ) -> tuple[list[tuple[T, int, str]], list[Failure[T]]]:
        """Copy each (tag, source version, destination key) in `bucket`; (tag, size, copy's ETag) done, and failures.

        Progress advances once per item, whichever path it took.
        """

        def copy_one(item: tuple[T, ObjectVersion, str]) -> str:
            return self.s3.copy(bucket, item[1], bucket, item[2])

        done, failed = run_parallel(copy_one, items, self.concurrency, progress)
        return [(item[0], item[1].size, etag) for item, etag in done], [Failure(f.item[0], f.error) for f in failed]

    def copy_from(
        self,
        src: Engine,
        items: Sequence[tuple[ObjectVersion, CopyJob[T]]],
        part_size: int,
        streams: int,
        progress: Progress = NULL_PROGRESS,
        on_copied: Callable[[T, StreamedObject], None] | None = None,
    ) -> tuple[list[tuple[T, StreamedObject]], list[Failure[T]]]:
        """Copy each (listed source, job) from `src`'s endpoint to this one, streamed on `streams` threads.

        `on_copied` hears of each copy as it ends (from the thread that made
        it); progress advances once per item.
        """

        def copy_one(item: tuple[ObjectVersion, CopyJob[T]]) -> StreamedObject:
            job = item[1]
            moved = self.s3.stream_copy(src.s3, job.src_bucket, job.src_key, job.dst_bucket, job.dst_key, part_size)
            if on_copied is not None:
                on_copied(job.tag, moved)
            return moved

        done, failed = run_parallel(copy_one, items, max(1, min(self.concurrency, streams)), progress)
        return [(item[1].tag, moved) for item, moved in done], [Failure(f.item[1].tag, f.error) for f in failed]


class CrtEngine(Boto3Engine):
    """Bulk work through awscrt where it is faster; the rest as `Boto3Engine` does it."""

    name = "crt"

    def __init__(self, s3: S3, concurrency: int) -> None:
        super().__init__(s3, concurrency)
        self._bulk: BulkS3 | None = None
        self._bulk_lock = threading.Lock()

    @property
    def bulk(self) -> BulkS3:
        """The awscrt client, made on first use: a run with nothing to move never pays for it."""
        from .crt_engine import BulkS3

        with self._bulk_lock:
            if self._bulk is None:
                self._bulk = BulkS3(self.s3, self.concurrency)
            return self._bulk

    def download_versions(self, jobs: Iterable[GetJob[T]]) -> Iterator[tuple[GetJob[T], str | DrError]]:
        return self.bulk.download_versions(jobs)

    def copy_versions(
        self, bucket: str, items: Sequence[tuple[T, ObjectVersion, str]], progress: Progress = NULL_PROGRESS
    ) -> tuple[list[tuple[T, int, str]], list[Failure[T]]]:
        limit = self.s3.config.max_single_copy
        small = [it for it in items if it[1].size <= limit]
        done: list[tuple[T, int, str]] = []
        failed: list[Failure[T]] = []
        if small:
            self._copy_small_versions(bucket, small, progress, done, failed)
        more_done, more_failed = super().copy_versions(bucket, [it for it in items if it[1].size > limit], progress)
        return done + more_done, failed + more_failed

    def _copy_small_versions(
        self,
        bucket: str,
        small: Sequence[tuple[T, ObjectVersion, str]],
        progress: Progress,
        done: list[tuple[T, int, str]],
        failed: list[Failure[T]],
    ) -> None:
        jobs = (ServerCopyJob(it, bucket, it[1].key, it[1].version_id, bucket, it[2]) for it in small)
        outcomes = self.bulk.copy_versions(jobs)
        try:
            for job, outcome in outcomes:
                progress.advance()
                tag, src, _ = job.tag
                if isinstance(outcome, str):
                    done.append((tag, src.size, outcome))
                else:
                    failed.append(Failure(tag, outcome))
        finally:
            # Now, not when garbage is collected: an interrupted run waits for
            # its copies in flight before anything cleans up after them.
            outcomes.close()

    def copy_from(
        self,
        src: Engine,
        items: Sequence[tuple[ObjectVersion, CopyJob[T]]],
        part_size: int,
        streams: int,
        progress: Progress = NULL_PROGRESS,
        on_copied: Callable[[T, StreamedObject], None] | None = None,
    ) -> tuple[list[tuple[T, StreamedObject]], list[Failure[T]]]:
        """Small objects (by the listing) GET into memory and PUT through awscrt; the rest stream as on boto3.

        An object replaced by a big one since the listing is streamed too.
        """
        limit = self.s3.config.small_object
        if not isinstance(src, CrtEngine):
            return super().copy_from(src, items, part_size, streams, progress, on_copied)
        small = [it for it in items if 0 < it[0].size <= limit]
        large = [it for it in items if not 0 < it[0].size <= limit]
        done: list[tuple[T, StreamedObject]] = []
        failed: list[Failure[T]] = []
        if small:
            # The awscrt clients only when there is something for them (a no-change run has nothing).
            by_job = {id(job): listed for listed, job in small}
            for job, outcome in self.bulk.copy_small_from(src.bulk, (job for _, job in small)):
                if isinstance(outcome, SourceGrew):
                    large.append((by_job[id(job)], job))  # replaced by a big object since the listing: stream it
                    continue
                progress.advance()
                if isinstance(outcome, DrError):
                    failed.append(Failure(job.tag, outcome))
                    continue
                if on_copied is not None:
                    on_copied(job.tag, outcome)
                done.append((job.tag, outcome))
        more_done, more_failed = super().copy_from(src, large, part_size, streams, progress, on_copied)
        return done + more_done, failed + more_failed


_ENGINES: weakref.WeakKeyDictionary[S3, Engine] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def crt_available() -> bool:
    try:
        import awscrt.s3  # noqa: F401
    except ImportError:
        return False
    return True


def engine_for(s3: S3, transfer_client: str = "crt", concurrency: int | None = None) -> Engine:
    """The engine for `s3`'s endpoint, chosen once per `s3`.

    `transfer_client` is the config key's value: "crt" gets awscrt where it is
    installed, anything else ("classic") boto3 for everything.

    Kept with the S3 object (weakly), so an awscrt client goes, with its
    connections and threads, when the S3 object does.
    """
    with _LOCK:
        engine = _ENGINES.get(s3)
        if engine is None or engine.name != _pick(transfer_client):
            n = concurrency or s3.concurrency
            engine = CrtEngine(s3, n) if _pick(transfer_client) == "crt" else Boto3Engine(s3, n)
            _ENGINES[s3] = engine
        return engine


def _pick(transfer_client: str) -> str:
    return "crt" if transfer_client == "crt" and crt_available() else "boto3"


def _set_mtime(job: GetJob[Any], mtime: float) -> None:
    os.utime(job.dest, (mtime, mtime))


def _as_completed(
    fn: Callable[[GetJob[T]], str], jobs: Iterable[GetJob[T]], concurrency: int
) -> Iterator[tuple[GetJob[T], str | DrError]]:
    """`fn` over `jobs` on `concurrency` threads, pulled lazily; (job, result or DrError) as each ends.

    On an interruption (or the consumer stopping), nothing more starts and
    what runs ends first, so a cleanup after this sees every write it made.
    """
    it = iter(jobs)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: dict[Future[str], GetJob[T]] = {}
        try:
            while True:
                while len(pending) < concurrency * 2:
                    job = next(it, None)
                    if job is None:
                        break
                    pending[pool.submit(fn, job)] = job
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    outcome: str | DrError
                    try:
                        outcome = fut.result()
                    except DrError as err:
                        outcome = err
                    yield job, outcome
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
