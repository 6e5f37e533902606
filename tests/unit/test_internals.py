"""dr_tasks/internals/: the internals we rely on are where we use them, the off switch, and a clean import.

A failure here after a `pip install -U` means an Invoke, botocore or Python
internal moved: fix `dr_tasks/internals/` (or bound the version in
pyproject.toml) before a user's run finds it.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dr_tasks import internals

REPO = Path(__file__).resolve().parents[2]
TS = "2026-04-15T18:00:00Z"


# ---------------------------------------------------------------------- every internal is where we use it
def test_every_internal_we_rely_on_is_where_we_use_it():
    assert internals.missing() == []


INSTANCE_ATTRIBUTES = {
    "botocore.signers.RequestSigner._credentials": ("botocore.signers", "RequestSigner", "__init__"),
    "invoke.env.Environment._prefix": ("invoke.env", "Environment", "__init__"),
    "invoke.config.Config._project_prefix": ("invoke.config", "Config", "set_project_location"),
}


def _move(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Simulate a library moving `name` (dotted: module[.Class].attr)."""
    import importlib

    if name in INSTANCE_ATTRIBUTES:
        # Set on each instance: the method that sets it now keeps it under another name.
        module, cls, method = INSTANCE_ATTRIBUTES[name]
        owner = getattr(importlib.import_module(module), cls)
        real = getattr(owner, method)
        attr = name.rsplit(".", 1)[1]

        def renamed(self: Any, *a: Any, **kw: Any) -> None:
            real(self, *a, **kw)
            vars(self)["_renamed"] = vars(self).pop(attr)

        monkeypatch.setattr(owner, method, renamed)
        return
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:-1]:
            owner = getattr(owner, attr)
        monkeypatch.delattr(owner, parts[-1])
        return
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(internals.RELIED_ON))
def test_each_check_notices_its_internal_moving(monkeypatch: pytest.MonkeyPatch, name: str):
    assert internals.RELIED_ON[name]()
    _move(monkeypatch, name)
    assert not internals.RELIED_ON[name]()


# ---------------------------------------------------------------------- each trick still does its job
def _restore_args(*argv: str) -> dict[str, Any]:
    from invoke.parser import Parser, ParserContext

    from dr_tasks import dr

    task = dr["restore"]
    ctx = ParserContext(name="restore", args=task.get_arguments())
    return {k: a.value for k, a in Parser(contexts=[ctx]).parse_argv(["restore", *argv])[0].args.items()}


def test_restore_unit_is_optional_when_path_or_all_stands_in_for_it():
    # Invoke's parser asks each positional's `.value` whether it is still unfilled.
    assert _restore_args("skills", TS)["unit"] == "skills"
    assert _restore_args("--all", TS)["unit"] == "" and _restore_args("--all", TS)["ts"] == TS
    assert _restore_args("--path", "state/notes/", TS)["ts"] == TS
    # The flag after TS: TS landed in UNIT, and the task moves it over.
    assert _restore_args(TS, "--all")["unit"] == TS and _restore_args(TS, "--all")["ts"] == ""


def test_without_path_or_all_both_positionals_are_required():
    from invoke.exceptions import ParseError

    with pytest.raises(ParseError, match="positional"):
        _restore_args(TS)


def test_models_are_read_into_plain_dicts():
    # Should botocore stop calling `_load_file`, its own reader (OrderedDicts) applies again.
    model = internals.shared_model_loader().load_service_model("s3", "service-2")
    assert type(model) is dict and type(model["operations"]) is dict


def _client() -> tuple[Any, Any]:
    import botocore.session

    session = botocore.session.Session()
    internals.speed_up_session(session)
    session.set_credentials("probe-key", "probe-secret")
    return session, session.create_client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")


def test_our_listing_parser_runs_before_botocore_200_error_check_which_still_runs():
    _, client = _client()
    seen: list[int] = []
    internals.register_before_200_check(
        client.meta.events, "before-parse.s3.*", lambda response_dict, **_: seen.append(response_dict["status_code"])
    )
    response = {"status_code": 200, "headers": {}, "body": b"<Error><Code>InternalError</Code></Error>"}
    client.meta.events.emit(
        "before-parse.s3.ListObjectsV2",
        operation_model=client.meta.service_model.operation_model("ListObjectsV2"),
        response_dict=response,
        customized_response_dict={},
    )
    assert seen == [200]  # ours first
    assert response["status_code"] == 500  # botocore's check after it, still there


def test_signing_credentials_are_the_clients():
    session, client = _client()
    assert internals.signing_credentials(client, session).access_key == "probe-key"


def test_the_fast_timestamp_parser_is_installed_in_new_sessions():
    session, _ = _client()
    factory = session.get_component("response_parser_factory")
    parser = factory.create_parser("rest-xml")
    assert parser._timestamp_parser is internals.timestamp_parser()


def test_frozen_heap_leaves_a_heap_someone_else_froze_frozen():
    assert gc.get_freeze_count() == 0
    with internals.frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        # Frozen objects may still die meanwhile (the count can drop), so what
        # is checked is that the block never thaws what it did not freeze.
        thawed: list[int] = []
        with pytest.MonkeyPatch.context() as m:
            m.setattr(internals.gc, "unfreeze", lambda: thawed.append(1))
            with internals.frozen_heap():
                pass
        assert thawed == []
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# ---------------------------------------------------------------------- the name a task was called under
def _switched_off_body(c: Any) -> None:
    pass


def test_a_task_learns_the_name_the_executor_runs_it_under():
    from invoke import Collection, Context, Executor, task

    seen: list[str | None] = []

    def body(c: Context) -> None:
        seen.append(internals.called_as(body))

    mounted = Collection()
    mounted.add_collection(Collection("dr", task(body, name="rollback", aliases=("undo",))), name="disaster")
    Executor(mounted).execute("disaster.rollback")
    Executor(mounted).execute("disaster.undo")
    assert seen == ["disaster.rollback", "disaster.undo"]
    assert internals.called_as(body) is None  # outside a run: not known


# ---------------------------------------------------------------------- the off switch
def test_switched_off_every_trick_is_skipped(monkeypatch: pytest.MonkeyPatch):
    from botocore.utils import parse_timestamp

    monkeypatch.setenv(internals.ENV, "off")
    assert not internals.enabled()
    assert internals.timestamp_parser() is parse_timestamp
    assert internals.project_prefix(type("C", (), {"_project_prefix": "/x"})()) is None
    assert internals.called_as(_switched_off_body) is None  # hints then name the default mount
    with internals.frozen_heap():
        assert gc.get_freeze_count() == 0
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with internals.caching_own_bytecode():
        assert sys.dont_write_bytecode is True
    session, client = _client()
    assert not isinstance(session.get_component("data_loader"), type(internals.shared_model_loader()))
    assert internals.signing_credentials(client, session).access_key == "probe-key"


# What a process sees of Invoke and the interpreter: the functions dr-tasks
# could rebind and the switches it could flip.
PROBE = """
import gc, json, signal, sys, threading
sys.dont_write_bytecode = True  # as `inv` sets it before importing tasks.py
import invoke.config as ic, invoke.env as ie, invoke.parser as ip

def seen():
    return {
        "merge_dicts": repr(ic.merge_dicts),
        "loaders": [repr(getattr(ic.Config, n)) for n in ("_load_yaml", "_load_yml", "_load_json")],
        "env": [repr(getattr(ie.Environment, n)) for n in ("_path_set", "_path_get", "_to_env_var")],
        "argument": [repr(v) for v in vars(ip.Argument).values()],
        "dont_write_bytecode": sys.dont_write_bytecode,
        "gc": [gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()],
        "signals": [repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)],
        "hooks": [repr(sys.excepthook), repr(threading.excepthook)],
    }

before = seen()
exec(sys.argv[1])
after = seen()
print(json.dumps({k: [before[k], after[k]] for k in before if before[k] != after[k]}))
"""


def _changes(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**_environ(), **(env or {})},
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != internals.ENV}


@pytest.mark.parametrize(
    "code",
    [
        "import dr_tasks",
        "from dr_tasks import dr",
        "import dr_tasks.tasks",
        "import dr_tasks.cli",
        "from dr_tasks import *",
    ],
)
def test_importing_dr_tasks_changes_nothing_in_invoke_or_the_interpreter(code: str):
    assert _changes(code) == {}


def test_the_opt_in_is_what_changes_invoke():
    changed = _changes("from dr_tasks import friendly_config_errors; friendly_config_errors()")
    assert {"merge_dicts", "loaders", "env"} <= set(changed)
    opt_in = "from dr_tasks import friendly_config_errors; friendly_config_errors()"
    assert _changes(opt_in, {internals.ENV: "off"}) == {}


def test_a_botocore_whose_loader_internals_moved_gets_its_own_loader_back(monkeypatch: pytest.MonkeyPatch):
    import botocore.loaders
    import botocore.session

    monkeypatch.setattr(internals.relied, "_present", {})
    monkeypatch.delattr(botocore.loaders, "instance_cache")
    session = botocore.session.Session()
    internals.speed_up_session(session)
    assert session.get_component("data_loader") is not internals.boto._loader
