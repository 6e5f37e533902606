"""Making botocore S3 clients: a session (sped up in dr_tasks.internals) and the client's Config.

Everything here speaks the S3 that S3-compatible stores speak (AWS, DigitalOcean
Spaces, MinIO, Ceph RGW): request checksums only when required, path-style
addressing on custom endpoints, retries with backoff in botocore's standard
mode.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ProfileNotFound

from .. import internals
from ..config import Endpoint
from ..errors import DrError
from . import counting


def new_botocore_session() -> Any:
    import botocore.session

    session = botocore.session.Session()
    internals.speed_up_session(session)
    return session


def new_client(endpoint: Endpoint, concurrency: int, attempts: int) -> tuple[Any, Any]:
    """A botocore S3 client for `endpoint` (and its session), sized for `concurrency` parallel requests."""
    try:
        # botocore directly, not a boto3 Session: boto3's client brings its
        # transfer manager's CRT glue, a cost of every start (bench/README.md,
        # finding 15), for two calls that `_transfer_manager` makes from s3transfer itself.
        core = new_botocore_session()
        if endpoint.profile:
            core.set_config_variable("profile", endpoint.profile)
        if endpoint.region:
            core.set_config_variable("region", endpoint.region)
        if endpoint.access_key_id or endpoint.secret_access_key:
            core.set_credentials(endpoint.access_key_id, endpoint.secret_access_key)
        # A missing profile would otherwise only fail at the first request: read it now.
        core.get_scoped_config()
    except ProfileNotFound:
        raise DrError(
            f"credentials profile {endpoint.profile!r} was not found",
            f"define it in ~/.aws/credentials or unset {endpoint.key('profile')}",
        ) from None
    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=max(10, concurrency + 2),
        connect_timeout=10,
        read_timeout=120,
        # botocore >= 1.36 sends CRC trailers by default; RGW (and so
        # Spaces), MinIO and others answer 411 or ignore them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path" if endpoint.endpoint_url else "auto"},
        signature_version="s3v4",
    )
    try:
        client = core.create_client("s3", endpoint_url=endpoint.endpoint_url, config=config)
    except BotoCoreError as err:
        # e.g. AWS_CA_BUNDLE set to "" or a bad AWS_* setting: say which, no traceback.
        raise DrError(
            f"cannot set up the S3 client: {err}",
            f"check the AWS_* environment variables and {endpoint.key('endpoint_url')}",
        ) from None
    for event, hook in counting.client_hooks():
        client.meta.events.register(event, hook)
    return client, core
