"""The internals dr-tasks relies on (`RELIED_ON`), the check that each is still there, and the off switch."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

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
    "invoke.executor.Executor.execute": lambda: _executor_keeps_call(),
    "invoke.program.Program.parse_cleanup": _attr("invoke.program", "Program", "parse_cleanup"),
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


def _executor_keeps_call() -> bool:
    """`Executor.execute` still runs each task with its `Call` in a local named `call` (see `called_as`)."""
    if not _attr("invoke.executor", "Executor", "execute")():
        return False
    from invoke.executor import Executor

    return "call" in Executor.execute.__code__.co_varnames


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


