"""One typed, validated config object built from Invoke's `dr` config section.

Defaults live in `DEFAULTS`; `DECLARED` is what the collection declares with
`ns.configure`, so every key exists and Invoke's `INVOKE_DR_<KEY>` environment
variables can override any of them. Validation happens here, before any
request is sent, and each problem is one line naming the key and the fix: a
key dr does not know (a typo such as `endpoint` for `endpoint_url`) is refused
first, with the nearest known key.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pathspec

from .errors import ConfigError
from .layout import META_PREFIX

DEFAULT_INDEX = "state/log/snapshots.ndjson"

DEFAULTS: dict[str, Any] = {
    "bucket": None,
    "prefix": "",
    "snapshot_prefix": "snapshots/",
    "endpoint_url": None,
    "region": None,
    "profile": None,
    "root": ".",
    "index": DEFAULT_INDEX,
    "units": "state/skills/",
    "restore_dir": "_restore",
    "sync_allow": ["state/**"],
    "sync_deny": ["_restore/**"],
    # null means "the index": history must survive a rollback.
    "preserve": None,
    "retention_days": 30,
    # Requests in flight, not threads: bulk requests go through awscrt's event
    # loop. 32 because 16 capped a run behind a real region's latency (bench/README.md, finding 12).
    "concurrency": 32,
    # "crt": bulk GETs and small cross-region copies go through awscrt (C, far
    # less client CPU per request); "classic": everything through boto3.
    "transfer_client": "crt",
    # Requests a second to each bucket at most (null: as fast as concurrency allows, slowing on 503 SlowDown);
    # for stores with published limits, e.g. 500 on DigitalOcean Spaces (README.md).
    "max_requests_per_second": None,
    "backup": {
        "bucket": None,
        "prefix": "",
        "endpoint_url": None,
        "region": None,
        "profile": None,
        "access_key_id": None,
        "secret_access_key": None,
        "max_age_days": 7,
    },
    # null: dr.freshness and dr.verify do not ask for a drill row.
    "drill": {"max_age_days": None},
    "hooks": {},
}

# The tasks that run `pre_<task>` / `post_<task>` hooks.
TASK_NAMES = (
    "snapshot",
    "restore",
    "rollback",
    "backup",
    "freshness",
    "versioning",
    "verify",
    "reindex",
    "prune",
    "pin",
    "recover",
    "unprune",
)
# Tasks that run no hooks: a hook named for one of them would never run.
NO_HOOK_TASKS = ("list", "show", "drill")
for _task in TASK_NAMES:
    DEFAULTS["hooks"][f"pre_{_task}"] = []
    DEFAULTS["hooks"][f"post_{_task}"] = []

# Keys whose value is a list of strings. Invoke casts an INVOKE_DR_<KEY>
# variable by the declared value's type and cannot make a list of a string,
# so these are declared null (their defaults apply when unset) and the
# variable's text reaches `from_invoke`, which reads it as JSON.
LIST_KEYS = (
    ("sync_allow",),
    ("sync_deny",),
    ("preserve",),
    *(("hooks", name) for name in DEFAULTS["hooks"]),
)
ENV_PREFIX = "INVOKE_"


def _declared() -> dict[str, Any]:
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for path in LIST_KEYS:
        section = out
        for part in path[:-1]:
            section = section[part]
        section[path[-1]] = None
    return out


# What the collection declares: every key of DEFAULTS, list keys null.
DECLARED = _declared()

# S3 bucket naming rules (the subset every provider accepts).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to talk S3."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    # `dr.max_requests_per_second`: how fast to talk to it, not where it is (not part of equality).
    max_requests_per_second: float | None = field(default=None, compare=False)
    # The config section the settings came from (`dr` or `dr.backup`), so an
    # error's hint names the keys the operator has to fix. Where the settings
    # came from does not change where they point: not part of equality.
    section: str = field(default="dr", compare=False)

    def key(self, name: str) -> str:
        """The full config key of one of this endpoint's settings, e.g. `dr.backup.endpoint_url`."""
        return f"{self.section}.{name}"


@dataclass(frozen=True)
class BackupConfig:
    endpoint: Endpoint | None
    prefix: str
    max_age_days: float


@dataclass(frozen=True)
class DrConfig:
    """Everything an operation needs, validated. Paths in `root` terms."""

    endpoint: Endpoint
    prefix: str
    snapshot_prefix: str
    root: Path
    index: str
    units: str
    restore_dir: str
    sync_allow: tuple[str, ...]
    sync_deny: tuple[str, ...]
    preserve: tuple[str, ...]
    retention_days: int
    concurrency: int
    backup: BackupConfig
    hooks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    transfer_client: str = "crt"
    # drill.max_age_days: how old the newest `dr.drill --live` row may be (None: not checked).
    drill_max_age_days: float | None = None

    @property
    def bucket(self) -> str:
        return self.endpoint.bucket

    @property
    def index_path(self) -> Path:
        return self.root / self.index

    @property
    def restore_path(self) -> Path:
        return self.root / self.restore_dir

    def key_for(self, rel: str) -> str:
        """Bucket key of a root-relative local path."""
        return self.prefix + rel

    def rel_for(self, key: str) -> str:
        """Root-relative local path of a live key."""
        return key[len(self.prefix) :]

    def reserved_prefixes(self) -> tuple[str, ...]:
        """Keys under `prefix` that are not live: snapshots and our own bookkeeping."""
        return (self.snapshot_prefix, META_PREFIX)

    def is_live_key(self, key: str) -> bool:
        return key.startswith(self.prefix) and not key.startswith(self.reserved_prefixes())

    def with_endpoint(self, endpoint: Endpoint) -> DrConfig:
        return replace(self, endpoint=endpoint)


def _str(raw: Mapping[str, Any], key: str, *, required: bool = False, name: str = "") -> str | None:
    value = raw.get(key)
    name = name or key
    if value is None or value == "":
        if required:
            raise ConfigError(
                name,
                "is not set",
                f"add `{name.replace('.', ': ')}: <value>` under `dr:` in invoke.yaml "
                f"or export INVOKE_DR_{name.replace('.', '_').upper()}",
            )
        return None if value is None else ""
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, got {type(value).__name__}", "quote the value")
    return value


def _prefix(raw: Mapping[str, Any], key: str, name: str = "") -> str:
    value = _str(raw, key, name=name) or ""
    name = name or key
    if value.startswith("/") or ".." in value.split("/"):
        raise ConfigError(name, f"{value!r} is not a relative key prefix", "use e.g. `backups/`")
    if value and not value.endswith("/"):
        raise ConfigError(name, f"{value!r} must end with '/'", f"use `{value}/`")
    return value


def _endpoint_url(raw: Mapping[str, Any], name: str) -> str | None:
    value = _str(raw, "endpoint_url", name=name)
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            name,
            f"{value!r} is not an http(s) URL",
            "use e.g. `https://tor1.digitaloceanspaces.com` (scheme and host, no bucket)",
        )
    return value


def _bucket(raw: Mapping[str, Any], name: str) -> str:
    value = _str(raw, "bucket", required=True, name=name)
    assert value is not None
    if not _BUCKET_RE.match(value) or ".." in value:
        raise ConfigError(
            name,
            f"{value!r} is not a valid bucket name",
            "use 3-63 lowercase letters, digits, '.' or '-' (no slashes, no s3:// prefix)",
        )
    return value


def _int(raw: Mapping[str, Any], key: str, minimum: int) -> int:
    value = raw.get(key, DEFAULTS[key])
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be a whole number, got {value!r}", f"set e.g. `{key}: {DEFAULTS[key]}`")
    if value < minimum:
        raise ConfigError(key, f"must be at least {minimum}, got {value}", f"set e.g. `{key}: {DEFAULTS[key]}`")
    return value


def _patterns(raw: Mapping[str, Any], key: str, default: list[str]) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return tuple(default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise ConfigError(key, f"must be a list of patterns, got {value!r}", f'use e.g. `{key}: ["state/**"]`')
    return tuple(value)


def _hooks(raw: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    value = raw.get("hooks") or {}
    if not isinstance(value, Mapping):
        raise ConfigError("hooks", "must be a mapping", 'use e.g. `hooks: {post_snapshot: ["inv sync.push"]}`')
    hooks: dict[str, tuple[str, ...]] = {}
    for name, cmds in value.items():
        if not re.fullmatch(r"(pre|post)_[a-z_]+", str(name)):
            raise ConfigError(f"hooks.{name}", "is not a hook name", "use pre_<task> or post_<task>")
        if cmds is None:
            cmds = []
        if isinstance(cmds, str):
            cmds = [cmds]
        if not isinstance(cmds, (list, tuple)) or not all(isinstance(c, str) for c in cmds):
            raise ConfigError(
                f"hooks.{name}", f"must be a list of commands, got {cmds!r}", 'use e.g. `["inv sync.push"]`'
            )
        hooks[str(name)] = tuple(cmds)
    return hooks


def _backup(raw: Mapping[str, Any]) -> BackupConfig:
    b = raw.get("backup") or {}
    if not isinstance(b, Mapping):
        raise ConfigError("backup", "must be a mapping", "use `backup: {bucket: ..., endpoint_url: ...}`")
    age = b.get("max_age_days", 7)
    try:
        max_age = float(age)
    except (TypeError, ValueError):
        raise ConfigError(
            "backup.max_age_days", f"must be a number, got {age!r}", "set e.g. `max_age_days: 7`"
        ) from None
    # NaN and infinity parse as floats but break every age comparison downstream.
    if isinstance(age, bool) or not math.isfinite(max_age) or max_age <= 0:
        raise ConfigError(
            "backup.max_age_days", f"must be a positive number of days, got {age!r}", "set e.g. `max_age_days: 7`"
        )
    endpoint = None
    if b.get("bucket"):
        endpoint = Endpoint(
            bucket=_bucket(b, "backup.bucket"),
            endpoint_url=_endpoint_url(b, "backup.endpoint_url"),
            region=_str(b, "region", name="backup.region"),
            profile=_str(b, "profile", name="backup.profile"),
            access_key_id=_str(b, "access_key_id", name="backup.access_key_id"),
            secret_access_key=_str(b, "secret_access_key", name="backup.secret_access_key"),
            max_requests_per_second=_max_rate(raw),
            section="dr.backup",
        )
    return BackupConfig(endpoint=endpoint, prefix=_prefix(b, "prefix", "backup.prefix"), max_age_days=max_age)


def _unknown(
    raw: Mapping[str, Any], known: Mapping[str, Any], section: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """(key path, the keys its section knows) of every key in `raw` that `known` lacks, sections included."""
    for key, value in raw.items():
        name = str(key)
        if name not in known:
            yield (*section, name), known
        elif isinstance(known[name], dict) and isinstance(value, Mapping):
            yield from _unknown(value, known[name], (*section, name))


def check_keys(raw: Mapping[str, Any]) -> None:
    """Refuse a key dr does not know (under `dr:` or one of its sections), naming the nearest known one.

    A typo is otherwise silently ignored: `endpoint` for `endpoint_url` sends
    every request to AWS, a hook named `post_snaphot` never runs.
    """
    # Keys of `dr:` itself first: a section's typo is easier to read after them.
    found = sorted(_unknown(raw, DEFAULTS), key=lambda f: len(f[0]))
    if not found:
        return
    path, known = found[0]
    key, name = ".".join(path), path[-1]
    section = ".".join(("dr", *path[:-1]))
    others = [".".join(("dr", *p)) for p, _ in found[1:]]
    also = f" (also unknown: {', '.join(others)})" if others else ""
    hook = re.fullmatch(r"(pre|post)_(\w+)", name) if path[:-1] == ("hooks",) else None
    if hook and hook.group(2) in NO_HOOK_TASKS:
        raise ConfigError(key, f"dr.{hook.group(2)} runs no hooks, so this one would never run{also}", "remove it")
    # A flat `backup_bucket:` meant `bucket:` under the `backup:` section.
    nested = [
        f"{sub}.{name[len(sub) + 1 :]}"
        for sub, keys in known.items()
        if isinstance(keys, dict) and name.startswith(f"{sub}_") and name[len(sub) + 1 :] in keys
    ]
    if nested:
        sub, inner = nested[0].split(".")
        raise ConfigError(
            key,
            f"unknown key in section {section} (did you mean {section}.{nested[0]}?){also}",
            f"put it under the `{sub}:` section as `{inner}:`",
        )
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
    if close:
        raise ConfigError(
            key,
            f"unknown key in section {section} (did you mean {section}.{close[0]}?){also}",
            f"rename it to `{close[0]}`, or remove it",
        )
    if path[:-1] == ("hooks",):
        fix = f"remove it, or name it pre_<task> or post_<task> for one of: {', '.join(TASK_NAMES)}"
    else:
        fix = f"remove it (known keys: {', '.join(str(k) for k in known)})"
    raise ConfigError(key, f"unknown key in section {section}{also}", fix)


_LIST_EXAMPLES = {"sync_allow": '["state/**"]', "sync_deny": '["tmp/**", "*.log"]', "preserve": '["state/keep/**"]'}


def env_var(path: tuple[str, ...]) -> str:
    """The environment variable Invoke reads for a `dr` key, e.g. INVOKE_DR_HOOKS_POST_SNAPSHOT."""
    return ENV_PREFIX + "_".join(("dr", *path)).upper()


def _json_list(path: tuple[str, ...], text: str) -> list[str]:
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    var = env_var(path)
    shown = text if len(text) <= 80 else text[:77] + "..."
    example = _LIST_EXAMPLES.get(path[-1], '["inv sync.push"]')
    raise ConfigError(
        ".".join(path),
        f"${var} must be a JSON list of strings, got {shown!r}",
        f"e.g. {var}='{example}', or {var}='[]' for none",
    )


def from_invoke(raw: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Invoke's `dr` section (plain dicts), checked for unknown keys, with list keys set from the environment decoded.

    A list key's `INVOKE_DR_<KEY>` reaches here as the variable's text (see
    `LIST_KEYS`); it is recognised by being exactly what the variable holds,
    and must be a JSON list (`'[]'` switches e.g. a hook off for one run).
    A string set in invoke.yaml keeps meaning a one-item list.
    """
    check_keys(raw)
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    for path in LIST_KEYS:
        section: Any = out
        for part in path[:-1]:
            section = section.get(part)
            if not isinstance(section, dict):
                break
        else:
            value = section.get(path[-1])
            if isinstance(value, str) and environ.get(env_var(path)) == value:
                section[path[-1]] = _json_list(path, value)
    return out


def load(raw: Mapping[str, Any] | None, base: Path | None = None, **overrides: Any) -> DrConfig:
    """Build a `DrConfig` from the `dr` section (a mapping) plus flag overrides.

    `base` is where a relative `root` is resolved from: the host project's
    directory when run through Invoke, the working directory otherwise.
    """
    check_keys(raw or {})
    merged: dict[str, Any] = {**DEFAULTS, **dict(raw or {})}
    merged.update({k: v for k, v in overrides.items() if v is not None})

    prefix = _prefix(merged, "prefix")
    snapshot_prefix = _prefix(merged, "snapshot_prefix")
    if not snapshot_prefix:
        raise ConfigError("snapshot_prefix", "must not be empty", "use the default `snapshots/`")
    if prefix.startswith(snapshot_prefix):
        raise ConfigError(
            "prefix",
            f"{prefix!r} lies inside snapshot_prefix {snapshot_prefix!r}",
            "pick prefixes that do not nest that way",
        )

    root_raw = _str(merged, "root") or "."
    root = Path(root_raw)
    if not root.is_absolute():
        root = (base or Path.cwd()) / root
    root = root.resolve()
    if not root.is_dir():
        raise ConfigError("root", f"{str(root)!r} is not a directory", "point dr.root at the repo (default: `.`)")

    index = _str(merged, "index") or DEFAULT_INDEX
    units = _prefix(merged, "units") or ""
    restore_dir = (_str(merged, "restore_dir") or "_restore").rstrip("/")
    if not restore_dir or restore_dir.startswith("/") or ".." in restore_dir.split("/"):
        raise ConfigError("restore_dir", f"{restore_dir!r} must be a relative directory inside root", "use `_restore`")

    for what, rel in (("units", units), ("index", index)):
        if rel and (prefix + rel).startswith(snapshot_prefix):
            # Live keys there would count as snapshot space: never snapshotted, backed up or rolled back.
            raise ConfigError(
                "snapshot_prefix",
                f"{snapshot_prefix!r} covers the live keys of {what} {prefix + rel!r}",
                "keep snapshots apart from live state, e.g. the default `snapshots/`",
            )
    # Null is "unset" here: list keys are declared null (see LIST_KEYS).
    allow = _patterns(merged, "sync_allow", DEFAULTS["sync_allow"])
    deny = _patterns(merged, "sync_deny", DEFAULTS["sync_deny"])
    _refuse_snapshot_prefix_over_pushed_paths(prefix, snapshot_prefix, allow, deny, restore_dir)
    # The index is always preserved, whatever else is listed: a rollback that
    # copied back an old index would drop the rows written since (its own too).
    preserve = _patterns(merged, "preserve", [index])
    if index not in preserve:
        preserve = (*preserve, index)
    return DrConfig(
        endpoint=Endpoint(
            bucket=_bucket(merged, "bucket"),
            endpoint_url=_endpoint_url(merged, "endpoint_url"),
            region=_str(merged, "region"),
            profile=_str(merged, "profile"),
            max_requests_per_second=_max_rate(merged),
        ),
        prefix=prefix,
        snapshot_prefix=snapshot_prefix,
        root=root,
        index=index,
        units=units,
        restore_dir=restore_dir,
        sync_allow=allow,
        sync_deny=deny,
        preserve=preserve,
        retention_days=_int(merged, "retention_days", 1),
        concurrency=_int(merged, "concurrency", 1),
        backup=_backup(merged),
        hooks=_hooks(merged),
        transfer_client=_transfer_client(merged),
        drill_max_age_days=_drill_max_age(merged),
    )


def _drill_max_age(raw: Mapping[str, Any]) -> float | None:
    d = raw.get("drill") or {}
    if not isinstance(d, Mapping):
        raise ConfigError("drill", "must be a mapping", "use `drill: {max_age_days: 7}`")
    age = d.get("max_age_days")
    if age is None:
        return None
    try:
        days = float(age)
    except (TypeError, ValueError):
        days = math.nan
    if isinstance(age, bool) or not math.isfinite(days) or days <= 0:
        raise ConfigError(
            "drill.max_age_days", f"must be a positive number of days, got {age!r}", "set e.g. `max_age_days: 7`"
        )
    return days


_GLOB_CHARS = "*?[\\"


def _pattern_base(pattern: str) -> str | None:
    """The directory (root-relative, "" for anywhere) under which a gitignore pattern can match, or None.

    None for what matches nothing (a blank line, a comment) or only takes
    paths away (a `!` negation). Read conservatively: a pattern without a
    slash matches at any depth, and a glob cuts the base at the directory
    before it, so the base is never narrower than what the pattern reaches.
    """
    p = pattern.strip()
    if not p or p.startswith(("#", "!")):
        return None
    body = p.rstrip("/")
    anchored = body.startswith("/")
    body = body.lstrip("/")
    if not anchored and "/" not in body:
        return ""
    cut = min((i for i in (body.find(c) for c in _GLOB_CHARS) if i >= 0), default=-1)
    if cut < 0:
        return body + "/"
    return body[: body.rfind("/", 0, cut) + 1]


def _refuse_snapshot_prefix_over_pushed_paths(
    prefix: str, snapshot_prefix: str, allow: tuple[str, ...], deny: tuple[str, ...], restore_dir: str
) -> None:
    """Refuse a snapshot_prefix under which a local path the guard lets through would land.

    A local path P is pushed to `<prefix>P` when it matches sync_allow and not
    sync_deny (or the holding dir); a key under snapshot_prefix is never
    snapshotted, rolled back or restored. So any pushable path whose key falls
    there would silently drop out of every snapshot. Only the config is
    judged: keys put into the bucket by other means are not knowable here.
    """
    if not snapshot_prefix.startswith(prefix):
        return  # outside prefix: no local path maps there
    rel = snapshot_prefix[len(prefix) :]
    denied = pathspec.GitIgnoreSpec.from_lines([*deny, f"{restore_dir}/**", f"/{restore_dir}"])
    # Denied whole: files at any depth, dot-files included, are never pushed.
    if all(denied.match_file(rel + probe) for probe in ("x", ".x", "x/y")):
        return
    for pattern in allow:
        base = _pattern_base(pattern)
        if base is not None and (rel.startswith(base) or base.startswith(rel)):
            raise ConfigError(
                "snapshot_prefix",
                f"{snapshot_prefix!r} covers live keys: local paths under {rel} match sync_allow {pattern!r}, "
                "and keys there would never be snapshotted, rolled back or restored",
                f"keep snapshots apart from live state, e.g. the default `snapshots/`, or add `{rel}**` to sync_deny",
            )


def _max_rate(raw: Mapping[str, Any]) -> float | None:
    value = raw.get("max_requests_per_second")
    if value is None or value == "":
        return None
    try:
        rate = float(value)  # INVOKE_DR_MAX_REQUESTS_PER_SECOND arrives as text
    except (TypeError, ValueError):
        rate = math.nan
    if isinstance(value, bool) or not math.isfinite(rate) or rate <= 0:
        raise ConfigError(
            "max_requests_per_second",
            f"must be a positive number of requests a second, got {value!r}",
            "set e.g. `max_requests_per_second: 500` (DigitalOcean Spaces), or null for no limit",
        )
    return rate


def _transfer_client(raw: Mapping[str, Any]) -> str:
    value = raw.get("transfer_client", "crt")
    if value not in ("crt", "classic"):
        raise ConfigError(
            "transfer_client",
            f"is {value!r}",
            'set it to "crt" (awscrt for the bulk per-object requests) or "classic" (boto3 only)',
        )
    return str(value)
