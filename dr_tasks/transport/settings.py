"""The transport's limits and retry budgets, in one place (in the spirit of s3transfer's TransferConfig).

Module constants are the defaults; `TransferConfig()` reads them when it is
made, so a test that lowers one (a smaller copy limit, fewer buffers) before
making a client gets it on that client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import DrError

# CopyObject's own limit; bigger objects need UploadPartCopy.
MAX_SINGLE_COPY = 5 * 1024**3
# Part size for those: 10,000 parts of it cover S3's 5 TiB object limit.
COPY_PART_SIZE = 512 * 1024**2
# How many times a request is tried in all (first try included), by botocore
# or awscrt; the AWS_MAX_ATTEMPTS environment variable, when set, wins.
MAX_ATTEMPTS = 8
# How many times a body is read in all when it breaks off or fails its check
# (short, wrong MD5): the engines retry requests, not the reading of bodies.
BODY_ATTEMPTS = 3
# Parts that stream copies through one client hold in memory at once, over
# every object streaming (each part is the caller's part size, 8 MiB for a
# backup): what bounds a backup's or recover's peak memory at about 128 MiB,
# whatever the number or size of the objects in flight.
STREAM_BUFFERS = 16
# Parts of one object uploading at once while its next part is read
# (measurements in bench/README.md).
PART_UPLOADS = 2
# Parts a streamed upload may use before its part size grows (S3 allows 10,000).
MAX_PARTS_USED = 9000
# A listing that goes around a skipped prefix lists each kept "directory"
# after it on its own when there are at most this many (see listing.py).
MAX_SPLIT = 64
# Partitions of a long listing listed at once (see listing_split.py); 1 lists
# serially, as one stream of pages.
LISTING_PARTITIONS = 8
# The in-memory bound of the awscrt engine: a backup copies objects up to this
# size through it (bigger ones stream in parts), and a restore checks versions
# up to this size in memory before writing them.
SMALL_OBJECT = 1024 * 1024
# Threads that create and write the small files of an awscrt restore.
WRITERS = 4


def max_attempts() -> int:
    """Attempts per request: AWS_MAX_ATTEMPTS when set, else MAX_ATTEMPTS.

    botocore reads AWS_MAX_ATTEMPTS itself only when the client's Config sets
    no attempts, and ours always does, so it is honoured here: an operator
    on a flaky link can ask for more, a test for fewer.
    """
    raw = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not raw:
        return MAX_ATTEMPTS
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise DrError(
            f"AWS_MAX_ATTEMPTS={raw[:20]!r} is not a whole number from 1 to 100",
            f"unset it (the default is {MAX_ATTEMPTS} attempts) or set e.g. AWS_MAX_ATTEMPTS=10",
        )
    return int(raw)


@dataclass(frozen=True)
class TransferConfig:
    """What one client of the transport may do: its budgets and sizes (defaults above)."""

    request_attempts: int = field(default_factory=max_attempts)
    body_attempts: int = field(default_factory=lambda: BODY_ATTEMPTS)
    max_single_copy: int = field(default_factory=lambda: MAX_SINGLE_COPY)
    copy_part_size: int = field(default_factory=lambda: COPY_PART_SIZE)
    stream_buffers: int = field(default_factory=lambda: STREAM_BUFFERS)
    part_uploads: int = field(default_factory=lambda: PART_UPLOADS)
    max_parts_used: int = field(default_factory=lambda: MAX_PARTS_USED)
    max_split: int = field(default_factory=lambda: MAX_SPLIT)
    listing_partitions: int = field(default_factory=lambda: LISTING_PARTITIONS)
    small_object: int = field(default_factory=lambda: SMALL_OBJECT)
    writers: int = field(default_factory=lambda: WRITERS)
