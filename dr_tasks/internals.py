"""Every place dr-tasks leans on another library's private internals or on interpreter state.

Invoke, botocore and the interpreter are used through their public surface
everywhere else. The exceptions live here, each with why it pays and what
happens without it, so that a library upgrade has one file to check and
`tests/unit/test_internals.py` fails (rather than a user's run) when an
internal we rely on moves. `RELIED_ON` lists them; `missing()` reports the
ones that are gone.

The off switch: `DR_TASKS_INTERNALS=off` (also `0`, `false`, `no`) skips
every trick below. dr-tasks stays correct without them, only slower (model
loading, listing parses, the garbage collector) or plainer (Invoke's own
config errors are tracebacks again). The one exception is `ScopedPositional`:
it is the contract's `dr.restore --all TS` form, built on Invoke's public
`Argument` class, and stays on.

Nothing here runs at import: importing `dr_tasks` changes nothing in the
host's Invoke or interpreter. Invoke's config errors become one-line
messages only in the `dr` program and in a host `tasks.py` that calls
`dr_tasks.friendly_config_errors()` itself.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from invoke.parser import Argument

ENV = "DR_TASKS_INTERNALS"


def enabled() -> bool:
    """False when the user turned the tricks off with DR_TASKS_INTERNALS=off."""
    return os.environ.get(ENV, "").strip().lower() not in ("off", "0", "false", "no")


# ---------------------------------------------------------------------- what we rely on
def _attr(module: str, *path: str) -> Callable[[], bool]:
    def present() -> bool:
        import importlib

        try:
            obj: Any = importlib.import_module(module)
        except ImportError:
            return False
        for name in path:
            # A class's own namespace: an override of a name the base class no
            # longer defines would silently never be called.
            found = name in vars(obj) if isinstance(obj, type) else hasattr(obj, name)
            if not found:
                return False
            obj = getattr(obj, name)
        return True

    return present


# name -> a check that it is still where we use it.
RELIED_ON: dict[str, Callable[[], bool]] = {
    "invoke.config.merge_dicts": _attr("invoke.config", "merge_dicts"),
    "invoke.config.AmbiguousMergeError": _attr("invoke.config", "AmbiguousMergeError"),
    "invoke.config.yaml": _attr("invoke.config", "yaml"),
    "invoke.config.Config._load_yaml": _attr("invoke.config", "Config", "_load_yaml"),
    "invoke.config.Config._load_yml": _attr("invoke.config", "Config", "_load_yml"),
    "invoke.config.Config._load_json": _attr("invoke.config", "Config", "_load_json"),
    "invoke.env.Environment.load": _attr("invoke.env", "Environment", "load"),
    "invoke.env.Environment._path_set": _attr("invoke.env", "Environment", "_path_set"),
    "invoke.env.Environment._path_get": _attr("invoke.env", "Environment", "_path_get"),
    "invoke.env.Environment._to_env_var": _attr("invoke.env", "Environment", "_to_env_var"),
    "invoke.env.Environment._prefix": lambda: _instance_has("invoke.env", "Environment", "_prefix"),
    "invoke.config.Config._project_prefix": lambda: _instance_has("invoke.config", "Config", "_project_prefix"),
    "invoke.parser.Argument.value": _attr("invoke.parser", "Argument", "value"),
    "botocore.loaders.Loader.list_available_services": _attr("botocore.loaders", "Loader", "list_available_services"),
    "botocore.loaders.Loader.load_data_with_path": _attr("botocore.loaders", "Loader", "load_data_with_path"),
    "botocore.loaders.JSONFileLoader._load_file": _attr("botocore.loaders", "JSONFileLoader", "_load_file"),
    "botocore.loaders.instance_cache": _attr("botocore.loaders", "instance_cache"),
    "botocore.handlers._handle_200_error": _attr("botocore.handlers", "_handle_200_error"),
    "botocore.utils.parse_timestamp": _attr("botocore.utils", "parse_timestamp"),
    "botocore.parsers.ResponseParserFactory.set_parser_defaults": _attr(
        "botocore.parsers", "ResponseParserFactory", "set_parser_defaults"
    ),
    "botocore.signers.RequestSigner._credentials": lambda: _signer_has_credentials(),
}


def _instance_has(module: str, cls: str, attr: str) -> bool:
    """Whether a fresh instance (as Invoke makes it) carries the private attribute `attr`."""
    import importlib

    owner = getattr(importlib.import_module(module), cls)
    if cls == "Environment":
        import invoke.config

        obj = owner(config=invoke.config.Config(), prefix="INVOKE_")
    else:
        obj = owner()
        obj.set_project_location("/nowhere")
    return attr in vars(obj)


def _signer_has_credentials() -> bool:
    import botocore.session

    client = botocore.session.Session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="probe", aws_secret_access_key="probe"
    )
    creds = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    return getattr(creds, "access_key", None) == "probe"


def missing() -> list[str]:
    """The relied-upon internals that are no longer where we use them (empty when all are)."""
    return [name for name, present in RELIED_ON.items() if not present()]


_present: dict[str, bool] = {}


def _all_present(*names: str) -> bool:
    """Whether these internals are all still there (each looked up once per process)."""
    for name in names:
        if name not in _present:
            _present[name] = RELIED_ON[name]()
        if not _present[name]:
            return False
    return True


_LOADER = (
    "botocore.loaders.instance_cache",
    "botocore.loaders.Loader.list_available_services",
    "botocore.loaders.Loader.load_data_with_path",
    "botocore.loaders.JSONFileLoader._load_file",
)
_TIMESTAMPS = ("botocore.utils.parse_timestamp", "botocore.parsers.ResponseParserFactory.set_parser_defaults")


# ---------------------------------------------------------------------- Invoke's own config errors
# Invoke reads invoke.yaml, merges it over our declared defaults and casts
# INVOKE_DR_* variables before any task runs, and its failures there are
# tracebacks: a YAML syntax error, `backup: x` where a mapping is declared,
# `INVOKE_DR_CONCURRENCY=many`. The guards below turn exactly those failures
# into Invoke's `Exit`, which it prints as one line with exit code 1. They
# rebind Invoke functions for the whole process, so only the `dr` program
# installs them, and a host's tasks.py that asks (`friendly_config_errors()`).
_merge_depth = threading.local()

_INVOKE_CONFIG = [n for n in RELIED_ON if n.startswith(("invoke.config", "invoke.env"))]


def _conflict(base: Any, updates: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], Any] | None:
    """The first key where one side is a mapping and the other is not, with the declared value."""
    if not isinstance(base, dict) or not isinstance(updates, dict):
        return None
    for key, value in updates.items():
        if key in base:
            if isinstance(value, dict) != isinstance(base[key], dict):
                return (*path, str(key)), base[key]
            found = _conflict(base[key], value, (*path, str(key)))
            if found:
                return found
    return None


def friendly_invoke_config_errors() -> None:
    """Make Invoke's config loading fail with a one-line message instead of a traceback. Idempotent.

    Call it before Invoke loads the config: in a host's tasks.py, at its top.
    """
    import invoke.config as ic
    from invoke.exceptions import Exit

    if not enabled() or getattr(ic, "_dr_tasks_guarded", False):
        return
    if not all(RELIED_ON[n]() for n in _INVOKE_CONFIG):
        # An Invoke whose internals moved: keep its own (traceback) errors
        # rather than break every task at import.
        return
    ic._dr_tasks_guarded = True  # type: ignore[attr-defined]

    merge = ic.merge_dicts

    def merge_dicts(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
        # Only the outermost call reports, so the key path is complete.
        if getattr(_merge_depth, "n", 0):
            return merge(base, updates)
        _merge_depth.n = 1
        try:
            return merge(base, updates)
        except ic.AmbiguousMergeError:
            found = _conflict(base, updates)
            name = ".".join(found[0]) if found else "?"
            declared = found[1] if found else None
            want = "a mapping" if isinstance(declared, dict) else "a single value or list, not a mapping"
            # The type only, never the value: it may be a secret put in the wrong place.
            raise Exit(
                f"config {name}: must be {want} (an Invoke config file or INVOKE_* variable sets it otherwise); "
                "fix: correct that key in invoke.yaml",
                code=1,
            ) from None
        finally:
            _merge_depth.n = 0

    ic.merge_dicts = merge_dicts  # type: ignore[assignment]

    def guarded(loader: Any, kind: str) -> Any:
        def load(self: Any, path: Any) -> Any:
            try:
                return loader(self, path)
            except UnicodeDecodeError:
                raise Exit(f"config file {path}: not UTF-8 text; fix: save it as UTF-8", code=1) from None
            except ValueError as err:  # json.JSONDecodeError
                raise Exit(f"config file {path}: not valid {kind}: {err}; fix the file", code=1) from None
            except ic.yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(err, "problem", None) or type(err).__name__
                raise Exit(f"config file {path}: not valid {kind}{where}: {problem}; fix the file", code=1) from None

        return load

    ic.Config._load_yaml = guarded(ic.Config._load_yaml, "YAML")  # type: ignore[method-assign]
    ic.Config._load_yml = guarded(ic.Config._load_yml, "YAML")  # type: ignore[method-assign]
    ic.Config._load_json = guarded(ic.Config._load_json, "JSON")  # type: ignore[method-assign]

    _guard_environment()


def _guard_environment() -> None:
    """INVOKE_* variables: an uncastable value or two keys on one variable as one line; dr's list keys passed on."""
    import invoke.env as ie
    from invoke.exceptions import AmbiguousEnvVar, Exit, UncastableEnvVar

    path_set = ie.Environment._path_set

    def _path_set(self: Any, key_path: Any, value: str) -> None:
        try:
            path_set(self, key_path, value)
        except (ValueError, TypeError, UncastableEnvVar):
            var = (self._prefix or "") + self._to_env_var(key_path)
            old = self._path_get(key_path)
            if isinstance(old, (list, tuple)) and list(key_path[:1]) == ["dr"]:
                # A dr list key that invoke.yaml set: pass the text on, as Invoke
                # does for a key declared null; dr reads it as a JSON list
                # (config.from_invoke) and names the variable if it is not one.
                target = self.data
                for key in key_path[:-1]:
                    target = target.setdefault(key, {})
                target[key_path[-1]] = value
                return
            kind = {int: "a whole number", float: "a number", list: "a list", tuple: "a list"}.get(
                type(old), f"a {type(old).__name__}"
            )
            raise Exit(
                f"config {'.'.join(key_path)}: ${var} must be {kind}; fix: correct it, or set the key in invoke.yaml",
                code=1,
            ) from None

    ie.Environment._path_set = _path_set  # type: ignore[method-assign]

    env_load = ie.Environment.load

    def load(self: Any) -> Any:
        try:
            return env_load(self)
        except AmbiguousEnvVar as err:
            # Two keys map to one variable, e.g. a flat `backup_bucket:` beside
            # the `backup:` section: most likely a typo, which dr's key check names.
            from . import config

            try:
                section = self._path_get(["dr"])
            except KeyError:
                section = {}
            try:
                config.check_keys(_plain(section))
            except config.ConfigError as bad:
                raise Exit(str(bad), code=1) from None
            raise Exit(f"config: {err}; fix: rename one of the keys that map to that variable", code=1) from None

    ie.Environment.load = load  # type: ignore[method-assign]


def _plain(value: Any) -> Any:
    """Invoke's config mappings as plain dicts."""
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return {k: _plain(value[k]) for k in value}
    return value


# ---------------------------------------------------------------------- restore's optional positional
class ScopedPositional(Argument):
    """A positional argument that `--path` or `--all` stands in for.

    Invoke treats every positional as required: one whose value is None eats
    the next bare word, and one still None at the end is a parse error. With
    `--path` or `--all` given there is no UNIT, so UNIT reads as "" and the
    bare TS goes to TS (`inv dr.restore --all 2026-04-15T18:00:00Z`). When the
    flag comes after TS instead, TS has landed in UNIT: then TS reads as "" too
    and the task moves the value over. What this relies on is Invoke's parser
    asking `.value` which positional is still unfilled.
    """

    scope_args: tuple[Argument, ...] = ()
    # Set on TS: it may stay unset only when this (UNIT) took its value.
    took_my_value: Argument | None = None

    def _get(self) -> Any:
        value = Argument.value.fget(self)  # type: ignore[attr-defined]
        scoped = any(a.got_value for a in self.scope_args)
        if value is None and scoped and (self.took_my_value is None or self.took_my_value.got_value):
            return ""
        return value

    value = property(_get, Argument.value.fset)  # type: ignore[attr-defined,assignment]


def scope_positionals(args: list[Argument], first: str, second: str, scopes: Sequence[str]) -> list[Argument]:
    """`args` with positionals `first` and `second` made optional when one of the `scopes` flags is given."""
    out: list[Argument] = []
    made: dict[str, ScopedPositional] = {}
    by_name = {a.name: a for a in args}
    for a in args:
        if a.name in (first, second):
            # Invoke's public constructor, with the attributes Task.get_arguments gave it.
            b = ScopedPositional(
                names=a.names,
                kind=a.kind,
                default=a.default,
                help=a.help,
                positional=a.positional,
                optional=a.optional,
                incrementable=a.incrementable,
                attr_name=a.attr_name,
            )
            b.scope_args = tuple(by_name[s] for s in scopes)
            made[a.name] = b  # type: ignore[index]
            a = b
        out.append(a)
    made[second].took_my_value = made[first]
    return out


# ---------------------------------------------------------------------- Invoke's project directory
def project_prefix(config: Any) -> str | None:
    """Where Invoke found the host's tasks.py (its project config dir), or None when not known.

    Invoke keeps it only in a private attribute; without it (switched off, or
    gone) the caller falls back to the working directory.
    """
    if not enabled():
        return None
    prefix = getattr(config, "_project_prefix", None)
    return str(prefix) if prefix else None


# ---------------------------------------------------------------------- the interpreter
@contextlib.contextmanager
def caching_own_bytecode() -> Iterator[None]:
    """Inside this block modules may write their `.pyc`, unless the user asked for none.

    Invoke turns bytecode writing off for the whole process
    (`sys.dont_write_bytecode`, unless `inv --write-pyc`) so that a host repo
    gets no `__pycache__` for its tasks.py; an editable install of ours would
    then compile every module from source on each run. Writing is let through
    only while our code runs (the collection's import, a task's body), only
    when the switch is Invoke's (`-B` or PYTHONDONTWRITEBYTECODE keep their
    choice), and the flag is always put back.
    """
    if not enabled() or sys.flags.dont_write_bytecode or not sys.dont_write_bytecode:
        yield
        return
    sys.dont_write_bytecode = False
    try:
        yield
    finally:
        sys.dont_write_bytecode = True


_freeze_registered = False


def freeze_heap_at_exit() -> None:
    """Skip the interpreter's last garbage collection when the process ends.

    At exit Python walks every object still alive for cycles (botocore's
    parsed models, the listings, Invoke's config): a large share of a short
    task's wall time. `gc.freeze()` as the last exit handler registered moves
    them out of the collector's sight; memory goes back to the OS with the
    process anyway. Nothing of ours depends on a collection at exit: files are
    written inside `with` blocks, and the exit handlers registered earlier
    (logging, connection pools) run after this one, unchanged. Called from a
    task's body, never at import.
    """
    global _freeze_registered
    if enabled() and not _freeze_registered:
        _freeze_registered = True
        atexit.register(gc.freeze)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Every object alive now stays out of the collector's scans inside this block.

    While thousands of short-lived requests come and go, full collections over
    botocore's models and the listing were a large share of a restore's CPU.
    `gc.unfreeze()` thaws everything frozen, so a caller (or host) that froze
    objects before keeps them frozen: the trick is skipped then.
    """
    if not enabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
