"""What changed in live since TS: the staged tree against the live files, with a text or structural diff per file.

Said from the operator's side: a file in the holding dir that live lacks was
deleted since TS; a live file the holding dir lacks was created since TS.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import reprlib
from pathlib import Path
from typing import Any

from ...config import DrConfig
from ...guard import Guard
from .results import SYMLINK_NOTE, DiffResult, FileDiff, RestoredFile
from .scope import Scope

# Diff output per modified file, unless `full`.
DIFF_LINE_CAP = 60
# Files bigger than this get the binary summary (size, SHA-256) instead of a content diff.
DIFF_MAX_BYTES = 4 * 1024 * 1024
STRUCTURED = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".ndjson": "ndjson", ".jsonl": "ndjson"}


# A live file swapped for a symlink after the walk is still not followed.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_live(path: Path) -> Any:
    return os.fdopen(os.open(path, os.O_RDONLY | _NOFOLLOW), "rb")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with _open_live(path) as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()


def _live_files(cfg: DrConfig, scope: Scope, guard: Guard) -> tuple[dict[str, Path], list[str], dict[str, str]]:
    """Live regular files under the scope's base dir, by name; those the guard would never push; symlinks.

    Nothing is followed: a symlink (to a file or a directory, or the base dir
    itself, or a directory on the way to it) is returned with its target text,
    so the diff never reads outside the repo root.
    """
    found: dict[str, Path] = {}
    ignored: list[str] = []
    links: dict[str, str] = {}
    base_dir = cfg.root
    for part in scope.base.rstrip("/").split("/") if scope.base else []:
        base_dir = base_dir / part
        if base_dir.is_symlink():
            links[""] = os.readlink(base_dir)
            return found, ignored, links
    if not base_dir.is_dir():
        return found, ignored, links
    for dirpath, dirnames, filenames in os.walk(base_dir):
        here = Path(dirpath)
        rel_dir = here.relative_to(cfg.root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        linked = [dn for dn in dirnames if (here / dn).is_symlink()]
        dirnames[:] = sorted(
            dn for dn in dirnames if dn != ".git" and (rel_dir + dn) != cfg.restore_dir and dn not in linked
        )
        for fn in [*filenames, *linked]:
            p = here / fn
            rel = rel_dir + fn
            name = rel[len(scope.base) :]
            is_link = p.is_symlink()
            if not scope.covers_local(name) or not (is_link or p.is_file()):
                continue
            if guard.is_denied(rel) or not guard.allow.match_file(rel):
                ignored.append(name)
                continue
            if is_link:
                links[name] = os.readlink(p)
            else:
                found[name] = p
    return found, sorted(ignored), links


def _text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _load_yaml(text: str) -> Any:
    import yaml

    docs = list(yaml.safe_load_all(text))
    return docs[0] if len(docs) == 1 else docs


def _parse(fmt: str, text: str) -> Any:
    if fmt == "json":
        return json.loads(text)
    if fmt == "ndjson":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return _load_yaml(text)


def _short(value: Any, limit: int = 100) -> str:
    # Encoded lazily and cut at the limit: a YAML alias can stand for a tree of
    # a billion leaves that only exists once something walks all of it.
    text, size = [], 0
    try:
        for chunk in _ENCODER.iterencode(value):
            text.append(chunk)
            size += len(chunk)
            if size > limit:
                break
        s = "".join(text)
    except (TypeError, ValueError, RecursionError):
        s = reprlib.repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True)
# Nodes a parsed document may have, aliases expanded, for a structural diff;
# past it the text diff is shown (it is bounded by the file's size).
STRUCTURE_MAX_NODES = 100_000


def _too_big(doc: Any, cap: int = STRUCTURE_MAX_NODES) -> bool:
    """Whether walking `doc` would visit more than `cap` nodes (a recursive alias never ends: it counts too)."""
    todo, seen = [doc], 0
    while todo:
        node = todo.pop()
        seen += 1
        if seen > cap:
            return True
        if isinstance(node, dict):
            todo.extend(node.keys())
            todo.extend(node.values())
        elif isinstance(node, (list, tuple)):
            todo.extend(node)
    return False


def structural_changes(live: Any, restored: Any) -> list[str]:
    """What changed between two parsed documents, by path: `~` changed, `+` only at TS, `-` only live."""
    from deepdiff import DeepDiff

    dd = DeepDiff(live, restored, view="tree", verbose_level=2)
    out: list[tuple[str, str]] = []
    for report, levels in dd.items():
        for level in levels:
            path = level.path()
            if report.endswith("_added"):
                out.append((path, f"+ {path}: {_short(level.t2)}"))
            elif report.endswith("_removed"):
                out.append((path, f"- {path}: {_short(level.t1)}"))
            else:
                out.append((path, f"~ {path}: {_short(level.t1)} -> {_short(level.t2)}"))
    return [line for _, line in sorted(out)]


def _cap(lines: list[str], full: bool) -> tuple[list[str], int]:
    if full or len(lines) <= DIFF_LINE_CAP:
        return lines, 0
    return lines[:DIFF_LINE_CAP], len(lines) - DIFF_LINE_CAP


def diff_file(name: str, live: Path, restored: Path, ts_label: str, full: bool) -> FileDiff:
    lsize, rsize = live.lstat().st_size, restored.stat().st_size
    summary_live = {"size": lsize, "sha256": _sha256_file(live)}
    summary_restored = {"size": rsize, "sha256": _sha256_file(restored)}
    if max(lsize, rsize) > DIFF_MAX_BYTES:
        return FileDiff(
            name, "binary", live=summary_live, restored=summary_restored, note="too large for a content diff"
        )
    with _open_live(live) as fh:
        ldata = fh.read()
    rdata = restored.read_bytes()
    ltext, rtext = _text(ldata), _text(rdata)
    if ltext is None or rtext is None:
        return FileDiff(name, "binary", live=summary_live, restored=summary_restored)
    note = None
    fmt = STRUCTURED.get(Path(name).suffix.lower())
    if fmt:
        try:
            lobj = _parse(fmt, ltext)
        except Exception as err:  # any parser error means "not valid <fmt>": fall back to text
            lobj, note = None, f"live file is not valid {fmt.upper()} ({type(err).__name__}); text diff"
        try:
            robj = _parse(fmt, rtext) if note is None else None
        except Exception as err:
            note = f"restored file is not valid {fmt.upper()} ({type(err).__name__}); text diff"
        if note is None and (_too_big(lobj) or _too_big(robj)):
            note = f"more than {STRUCTURE_MAX_NODES} values once YAML aliases are expanded; text diff"
        if note is None:
            changes = structural_changes(lobj, robj) or ["(same data, different formatting)"]
            shown, cut = _cap(changes, full)
            return FileDiff(name, "structured", shown, cut, fmt, summary_live, summary_restored)
    lines = list(
        difflib.unified_diff(ltext.splitlines(), rtext.splitlines(), f"live/{name}", f"{ts_label}/{name}", lineterm="")
    )
    if not lines:
        # splitlines() hides these; the bytes still differ.
        lines = ["(differs only in line endings or the final newline)"]
    shown, cut = _cap(lines, full)
    return FileDiff(name, "text", shown, cut, None, summary_live, summary_restored, note)


def compute_diff(
    cfg: DrConfig, scope: Scope, staged: Path, restored: list[RestoredFile], ts_label: str, full: bool
) -> DiffResult:
    live, ignored, links = _live_files(cfg, scope, Guard(cfg))
    result = DiffResult(live_dir=scope.base or "./", ignored_live=ignored, live_symlinks=sorted(links))
    by_name = {f.name: f for f in restored}
    for name in sorted(set(by_name) | set(live)):
        if name in links:
            r = by_name[name]
            result.changed_since_ts.append(name)
            result.files.append(
                FileDiff(
                    name,
                    "symlink",
                    live={"symlink": links[name]},
                    restored={"size": r.size, "sha256": r.sha256},
                    note=SYMLINK_NOTE,
                )
            )
        elif name not in live:
            result.deleted_since_ts.append(name)
        elif name not in by_name:
            result.created_since_ts.append(name)
        else:
            path = staged.joinpath(*name.split("/"))
            if live[name].stat().st_size == by_name[name].size and _sha256_file(live[name]) == by_name[name].sha256:
                result.unchanged.append(name)
            else:
                result.changed_since_ts.append(name)
                result.files.append(diff_file(name, live[name], path, ts_label, full))
    return result
