"""Server-side copies of many object versions within one endpoint (snapshot, rollback).

A copy up to 5 GiB is one CopyObject. Those go through awscrt (`crt.py`)
when it is installed and `transfer_client` is "crt": the server does the
work, and botocore's Python per request was as much CPU as the server's
own, on the cores they share. Bigger copies (split into UploadPartCopy by
`S3.copy`), and every copy without awscrt, run on boto3 threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from .crt import ServerCopyJob, bulk_for
from .parallel import Failure, run_parallel
from .progress import NULL_PROGRESS, Progress
from .s3 import MAX_SINGLE_COPY, S3, ObjectVersion

T = TypeVar("T")


def copy_versions(
    s3: S3,
    bucket: str,
    items: Sequence[tuple[T, ObjectVersion, str]],
    concurrency: int,
    transfer_client: str = "crt",
    progress: Progress = NULL_PROGRESS,
) -> tuple[list[tuple[T, int, str]], list[Failure[T]]]:
    """Copy each (tag, source version, destination key) in `bucket`; return (tag, size, copy's ETag) done and failures.

    Progress advances once per item, whichever path it took.
    """
    bulk = bulk_for(s3, concurrency) if transfer_client == "crt" and items else None
    small = [it for it in items if bulk is not None and it[1].size <= MAX_SINGLE_COPY]
    rest = [it for it in items if bulk is None or it[1].size > MAX_SINGLE_COPY]
    done: list[tuple[T, int, str]] = []
    failed: list[Failure[T]] = []
    if bulk is not None and small:
        jobs = (ServerCopyJob(it, bucket, it[1].key, it[1].version_id, bucket, it[2]) for it in small)
        outcomes = bulk.copy_versions(jobs)
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

    def copy_one(item: tuple[T, ObjectVersion, str]) -> str:
        return s3.copy(bucket, item[1], bucket, item[2])

    more_done, more_failed = run_parallel(copy_one, rest, concurrency, progress)
    done += [(item[0], item[1].size, etag) for item, etag in more_done]
    failed += [Failure(f.item[0], f.error) for f in more_failed]
    return done, failed
