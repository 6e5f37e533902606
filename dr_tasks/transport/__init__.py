"""The transport: the only package that talks to S3 (botocore, and awscrt where it is faster).

Modules by job:
- `settings`: `TransferConfig`, the limits and retry budgets (one place).
- `session`: making botocore clients (shared model loader, timestamp parser, Config).
- `client`: `S3Base`, one endpoint's client, its settings and error wording (`errors`).
- `listing` / `listing_parse`: listings, read once in C, in the server's order.
- `reads`: GETs and the one body-retry helper, `read_with_retries`.
- `writes`: bucket setup, copies, puts, uploads, deletes, the lease's conditional create.
- `streaming`: cross-endpoint streamed copies (`S3.stream_copy`).
- `checks`: "are these the bytes" (through `proof`), the "null" version, SSE.
- `s3`: `S3`, all of the above on one object.
- `engine`: `Engine`, the bulk per-object work, boto3 or awscrt, chosen once (`engine_for`).
- `jobs`: the per-object work items and their outcomes.
- `crt_client` / `crt_engine`: the awscrt engine.
- `counting`: request counts, whichever engine sends them.
- `pacing`: one bucket's request pace, whichever engine sends: `max_requests_per_second` and backing off on SlowDown.
"""

from __future__ import annotations

from .counting import count_requests
from .engine import Engine, engine_for
from .errors import S3Error, credentials_hint, error_hint, unreachable_hint
from .jobs import CopyJob, GetJob, ServerCopyJob, SourceGrew, WriteFailed
from .model import ObjectDigest, ObjectVersion, StreamedObject
from .s3 import S3
from .settings import TransferConfig, max_attempts

__all__ = [
    "S3",
    "CopyJob",
    "Engine",
    "GetJob",
    "ObjectDigest",
    "ObjectVersion",
    "S3Error",
    "ServerCopyJob",
    "SourceGrew",
    "StreamedObject",
    "TransferConfig",
    "WriteFailed",
    "count_requests",
    "credentials_hint",
    "engine_for",
    "error_hint",
    "max_attempts",
    "unreachable_hint",
]
