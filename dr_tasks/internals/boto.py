"""botocore's internals dr-tasks leans on, for speed: a shared model loader, a fast timestamp parser,
the check of a 200 that carries an error, the signer's credentials (see the package docstring)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .relied import _all_present, enabled

_LOADER = (
    "botocore.loaders.instance_cache",
    "botocore.loaders.Loader.list_available_services",
    "botocore.loaders.Loader.load_data_with_path",
    "botocore.loaders.JSONFileLoader._load_file",
)
_TIMESTAMPS = ("botocore.utils.parse_timestamp", "botocore.parsers.ResponseParserFactory.set_parser_defaults")


# ---------------------------------------------------------------------- botocore
_loader: Any = None
_loader_lock = threading.Lock()


def _model_loader_class() -> Any:
    import json

    import botocore.loaders
    from botocore.exceptions import DataNotFoundError

    class KnownServices(Sequence[str]):
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

    class PlainJSONFiles(botocore.loaders.JSONFileLoader):
        """botocore's model files read into plain dicts rather than OrderedDicts.

        Its `object_pairs_hook=OrderedDict` is a Python call per JSON object
        (dicts keep their order anyway); botocore builds its own OrderedDicts
        from the models and never checks their type.
        """

        def _load_file(self, full_path: str, open_method: Callable[..., Any]) -> Any:
            if not os.path.isfile(full_path):
                return None
            with open_method(full_path, "rb") as fp:
                return json.loads(fp.read().decode("utf-8"))

    class ModelLoader(botocore.loaders.Loader):
        """botocore's data loader, minus a scan of every service directory before the first model.

        `load_service_model` checks the name it is given against the list of
        all ~400 services it could load, built by listing and stat-ing every
        directory of botocore's data, to load the one model we use. The check
        still happens, for the service asked about; the whole list is built
        only if read.
        """

        def list_available_services(self, type_name: str) -> Sequence[str]:  # type: ignore[override]
            return KnownServices(self, type_name)

        @botocore.loaders.instance_cache
        def load_data_with_path(self, name: str) -> Any:
            # Every new session parses `endpoints` through this uncached call;
            # its twin `load_data` is cached, and so is this now.
            return super().load_data_with_path(name)

    return ModelLoader, PlainJSONFiles


def shared_model_loader() -> Any:
    """The process's one botocore data loader (its cache of parsed models), made on first use."""
    global _loader
    with _loader_lock:
        if _loader is None:
            model_loader, plain_json = _model_loader_class()
            # Built from the environment alone: a profile named in the config
            # that does not exist must fail when the client is made, not here.
            data_path = os.environ.get("AWS_DATA_PATH")
            extra = (
                [os.path.expanduser(os.path.expandvars(d)) for d in data_path.split(os.pathsep)] if data_path else []
            )
            _loader = model_loader(extra_search_paths=extra, file_loader=plain_json())
        return _loader


def speed_up_session(session: Any) -> None:
    """A new botocore session shares the process's model loader and parses timestamps without dateutil.

    A new session per client re-read and re-parsed the S3 model and its
    endpoint rules; only the loader is shared, so credentials, profile and
    region are still resolved per session. Listings are CPU-bound in the
    client, and dateutil parsing each LastModified was most of it.
    """
    if not enabled():
        return
    # A botocore whose internals moved gets its own loader and parser back, not a crash.
    if _all_present(*_LOADER):
        session.register_component("data_loader", shared_model_loader())
    if _all_present(*_TIMESTAMPS):
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=timestamp_parser())


_parse_ts: Callable[[Any], datetime] | None = None


def timestamp_parser() -> Callable[[Any], datetime]:
    """botocore's timestamp parser, without dateutil for S3's XML form ("2026-11-25T01:51:10.123Z")."""
    from botocore.utils import parse_timestamp

    if not enabled():
        return parse_timestamp
    global _parse_ts
    if _parse_ts is None:
        _parse_ts = _fast_timestamp_parser(parse_timestamp)
    return _parse_ts


def _fast_timestamp_parser(parse_timestamp: Callable[[Any], datetime]) -> Callable[[Any], datetime]:
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


def register_before_200_check(events: Any, event: str, handler: Callable[..., Any]) -> None:
    """Register `handler` first for `event`, ahead of botocore's "a 200 that is really an error" check.

    That check parses a whole listing page once more; run after our own
    parse, it sees only what is left of the page. Switched off (or the check
    renamed), `handler` is simply registered first and runs after it.
    """
    import botocore.handlers

    check_200 = getattr(botocore.handlers, "_handle_200_error", None) if enabled() else None
    if check_200 is not None:
        events.unregister(event, check_200)
    events.register_first(event, handler)
    if check_200 is not None:
        events.register_first(event, check_200)


def signing_credentials(client: Any, session: Any) -> Any:
    """The botocore credentials `client` signs with, or None.

    The client's own (private) reference is the object it signs with; the
    session's `get_credentials()` returns the same object when it has one
    (the client took it from there), but runs the whole provider chain once
    more when it has none.
    """
    if enabled():
        signer = getattr(client, "_request_signer", None)
        if signer is not None and hasattr(signer, "_credentials"):
            return signer._credentials
    return session.get_credentials()
