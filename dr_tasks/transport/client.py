"""`S3Base`: one endpoint's botocore client, its transfer settings and how its failures are worded.

The operations are mixed in by job (listing.py, reads.py, writes.py,
streaming.py); `S3` in s3.py puts them together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import internals
from ..config import Endpoint
from ..errors import DrError
from . import listing_parse, pacing, session
from .errors import S3Error, credentials_hint, describe
from .settings import TransferConfig


class S3Base:
    """A botocore S3 client for one endpoint, sized for `concurrency` parallel requests."""

    def __init__(self, endpoint: Endpoint, concurrency: int = 32, config: TransferConfig | None = None) -> None:
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.config = config or TransferConfig()
        self._buffers = threading.BoundedSemaphore(self.config.stream_buffers)
        # Shared with the awscrt client of this endpoint (crt_client.py) and every other client of the bucket.
        self.pacer = pacing.pacer_for(
            endpoint.endpoint_url, endpoint.region, endpoint.bucket, endpoint.max_requests_per_second
        )
        self.client: Any
        self.client, self._session = session.new_client(endpoint, concurrency, self.config.request_attempts)
        self.pacer.install(self.client.meta.events)
        listing_parse.install(self.client.meta.events)

    def _transfer_manager(self, threshold: int = 8 * 1024**2, part_size: int = 8 * 1024**2) -> Any:
        """boto3's transfer manager (s3transfer) on this client: multipart uploads and copies in parallel."""
        from s3transfer.manager import TransferConfig as ManagerConfig
        from s3transfer.manager import TransferManager

        config = ManagerConfig(
            multipart_threshold=threshold, multipart_chunksize=part_size, max_request_concurrency=self.concurrency
        )
        return TransferManager(self.client, config)

    def _fail(self, operation: str, bucket: str, key: str | None, err: Exception) -> S3Error:
        detail, hint = describe(err, self.endpoint.section)
        return S3Error(operation, bucket, key, detail, hint)

    def call(self, operation: str, bucket: str, key: str | None, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """Run one client call; a failure left after retries becomes an `S3Error`."""
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as err:
            raise self._fail(operation, bucket, key, err) from None

    def credentials(self) -> Any:
        """The botocore credentials this client signs with (for the awscrt engine)."""
        creds = internals.signing_credentials(self.client, self._session)
        if creds is None:
            raise DrError("no credentials found", credentials_hint(self.endpoint.section))
        return creds
