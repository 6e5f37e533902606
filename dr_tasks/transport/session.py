"""Making botocore S3 clients: one shared model loader, the timestamp parser, the client's Config.

Everything here speaks the S3 that S3-compatible stores speak (AWS, DigitalOcean
Spaces, MinIO, Ceph RGW): request checksums only when required, path-style
addressing on custom endpoints, retries with backoff in botocore's standard
mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import botocore.loaders
from botocore.config import Config
from botocore.exceptions import BotoCoreError, DataNotFoundError, ProfileNotFound

from ..config import Endpoint
from ..errors import DrError
from . import counting

_parse_ts: Callable[[Any], datetime] | None = None


def _timestamp_parser() -> Callable[[Any], datetime]:
    global _parse_ts
    if _parse_ts is None:
        _parse_ts = _fast_timestamp_parser()
    return _parse_ts


def _fast_timestamp_parser() -> Callable[[Any], datetime]:
    """botocore's timestamp parser, without dateutil for S3's XML form ("2026-11-25T01:51:10.123Z")."""
    from botocore.utils import parse_timestamp
    from dateutil.tz import tzutc

    utc = tzutc()

    def parse(value: Any) -> datetime:
        if isinstance(value, str) and len(value) >= 20 and value[10] == "T" and value[-1] == "Z":
            with contextlib.suppress(ValueError):
                naive = datetime.fromisoformat(value[:-1])
                if naive.tzinfo is None:
                    return naive.replace(tzinfo=utc)
        return parse_timestamp(value)

    return parse


class _KnownServices(Sequence[str]):
    """The services a loader has models for, listed only when someone reads the whole list."""

    def __init__(self, loader: Any, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name
        self._all: list[str] | None = None

    def __contains__(self, name: object) -> bool:
        # One directory listing for the service asked about (cached by botocore).
        try:
            return bool(self._loader.list_api_versions(name, self._type_name))
        except DataNotFoundError:
            return False

    def _names(self) -> list[str]:
        if self._all is None:
            self._all = botocore.loaders.Loader.list_available_services(self._loader, self._type_name)
        return self._all

    def __getitem__(self, i: Any) -> Any:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())


class _PlainJSONFiles(botocore.loaders.JSONFileLoader):
    """botocore's model files read into plain dicts rather than OrderedDicts.

    Its `object_pairs_hook=OrderedDict` (a Python call per JSON object; dicts
    keep their order anyway) made reading S3's model, its endpoint rules and
    `endpoints.json` 33 ms of every run's start instead of 13. botocore builds
    its own OrderedDicts from the models and never checks their type. Should
    botocore rename this private hook, its own reader simply applies again.
    """

    def _load_file(self, full_path: str, open_method: Callable[..., Any]) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return json.loads(fp.read().decode("utf-8"))


class _ModelLoader(botocore.loaders.Loader):
    """botocore's data loader, minus a scan of every service directory before the first model.

    `load_service_model` checks the name it is given against the list of all
    ~400 services it could load, which it builds by listing and stat-ing every
    directory of botocore's data: ≈ 50 ms of each run's start (a tenth of a
    no-change backup), to load the one model we use. The check still happens,
    for the service asked about; the whole list is built only if read.
    """

    def list_available_services(self, type_name: str) -> Sequence[str]:  # type: ignore[override]
        return _KnownServices(self, type_name)

    @botocore.loaders.instance_cache
    def load_data_with_path(self, name: str) -> Any:
        # Every new session parses `endpoints` (≈ 15 ms) through this uncached
        # call; its twin `load_data` is cached, and so is this now.
        return super().load_data_with_path(name)


# One botocore data loader per process, shared by every S3 object. A new
# session per client re-read and re-parsed the S3 service model and
# its endpoint rules: ≈ 60 ms of CPU per client idle, 0.15-0.2 s under
# load, and a backup makes two or three clients. Only the loader (its cache
# of parsed JSON models) is shared: each S3 still gets a fresh session, so
# credentials, profile, region and environment are resolved per client
# exactly as before (≈ 5 ms).
_LOADER: Any = None
_loader_lock = threading.Lock()


def new_botocore_session() -> Any:
    global _LOADER
    import botocore.session

    session = botocore.session.Session()
    with _loader_lock:
        if _LOADER is None:
            # Built from the environment alone: a profile named in the
            # config that does not exist must fail in __init__ with the
            # "profile not found" message, not here.
            data_path = os.environ.get("AWS_DATA_PATH")
            extra = (
                [os.path.expanduser(os.path.expandvars(d)) for d in data_path.split(os.pathsep)] if data_path else []
            )
            _LOADER = _ModelLoader(extra_search_paths=extra, file_loader=_PlainJSONFiles())
        session.register_component("data_loader", _LOADER)
    # Listings are CPU-bound in the client, and most of that CPU was
    # dateutil parsing each LastModified (≈ 25 µs each: 0.17 of the 0.33 s
    # of CPU a 2,000-object listing took).
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp_parser())
    return session


def new_client(endpoint: Endpoint, concurrency: int, attempts: int) -> Any:
    """A botocore S3 client for `endpoint`, sized for `concurrency` parallel requests, hooks attached."""
    try:
        # botocore directly, not a boto3 Session: boto3's client brings its
        # transfer manager's CRT glue (≈ 30 ms of every start) for two
        # calls that `_transfer_manager` makes from s3transfer itself.
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
    return client
