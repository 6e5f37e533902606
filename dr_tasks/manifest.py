"""A snapshot's manifest (`<snapshot_prefix><id>.manifest.json`): the one place that writes and reads it.

Every operation that reads a manifest (verify, rollback, reindex) goes through
`parse_manifest`, and `dr.snapshot` parses what it is about to store with the
same function before storing it. So a manifest is either the typed `Manifest`
below, with every entry well formed and every key named once, or a
`ManifestError` saying what is wrong in one line: never a dict that crashes
some later `o["key"]`, and never a manifest one reader accepts and another
refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from .errors import DrError

MANIFEST_VERSION = 1
# Top-level fields of the format; anything else a manifest carries is kept as it is (`extra`).
_FIELDS = ("v", "id", "label", "ts", "bucket", "prefix", "source", "dest", "versioned", "objects")
_ENTRY_FIELDS = ("key", "size", "etag", "version_id", "last_modified", "sha256", "copy_etag")


class ManifestError(DrError):
    """A manifest `dr.snapshot` would not write; `problem` is the bare reason, for callers that add their own."""

    def __init__(self, snap_id: str, problem: str, where: str = "") -> None:
        self.problem = problem
        at = f" ({where})" if where else ""
        super().__init__(
            f"the manifest of snapshot {snap_id}{at} is damaged: {problem}",
            "use another snapshot (`inv dr.list`), or bring the manifest back from a noncurrent version or the "
            "cross-region backup",
        )


@dataclass(frozen=True)
class ManifestEntry:
    """One object of a snapshot: its key relative to `prefix`, as listed when the snapshot was taken."""

    key: str
    size: int
    etag: str  # without quotes
    version_id: str | None
    last_modified: str | None
    sha256: str | None = None
    # The ETag the server gave the snapshot's copy, where it differs from the source's (multipart).
    copy_etag: str | None = None
    # Fields of the entry this parser does not know, kept as they are (a later format's additions).
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "version_id": self.version_id,
            "last_modified": self.last_modified,
            "sha256": self.sha256,
            "copy_etag": self.copy_etag,
        }


@dataclass
class Manifest:
    id: str
    label: str
    ts: str
    bucket: str | None
    prefix: str | None
    source: str | None
    dest: str | None
    versioned: bool | None
    objects: list[ManifestEntry]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": MANIFEST_VERSION,
            "id": self.id,
            "label": self.label,
            "ts": self.ts,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "source": self.source,
            "dest": self.dest,
            "versioned": self.versioned,
            "objects": [e.to_dict() for e in self.objects],
            **self.extra,
        }


def format_manifest(manifest: Manifest) -> bytes:
    """The bytes to store; refuses (ManifestError) a manifest `parse_manifest` would refuse."""
    data = json.dumps(manifest.to_dict(), separators=(",", ":")).encode()
    parse_manifest(data, manifest.id)
    return data


def write_manifest(out: IO[bytes], manifest: Manifest, entries: Iterable[ManifestEntry]) -> int:
    """Write `manifest` with `entries` as its objects to `out`, one entry at a time; the number of entries.

    The same bytes `format_manifest` gives for the whole manifest, without
    holding it: each entry is checked as `parse_manifest` checks it, and the
    rest by parsing the manifest without its objects. Keys named twice are
    the caller's to exclude (a snapshot's listing keeps each key once).
    """
    head = manifest.to_dict()
    parse_manifest(json.dumps({**head, "objects": []}).encode(), manifest.id)
    count = 0
    out.write(b"{")
    for i, (name, value) in enumerate(head.items()):
        # As json.dumps writes a dict with these separators: key, ':', value, ',' between.
        out.write((("," if i else "") + json.dumps(name) + ":").encode())
        if name != "objects":
            out.write(json.dumps(value, separators=(",", ":")).encode())
            continue
        out.write(b"[")
        for entry in entries:
            doc = entry.to_dict()
            try:
                _entry(count, doc)
            except ValueError as err:
                raise ManifestError(manifest.id, str(err)) from None
            out.write((b"," if count else b"") + json.dumps(doc, separators=(",", ":")).encode())
            count += 1
        out.write(b"]")
    out.write(b"}")
    return count


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _opt_str(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is {_shown(value)}, not a string")
    return value


def _entry(i: int, o: Any) -> ManifestEntry:
    if not isinstance(o, dict):
        raise ValueError(f"object {i} is {_shown(o)}, not a JSON object")
    key, size, etag = o.get("key"), o.get("size"), o.get("etag")
    if not isinstance(key, str) or not key:
        raise ValueError(f"object {i} has key {_shown(key)}, not a non-empty string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"object {key!r} has size {_shown(size)}, not a whole number of bytes")
    if not isinstance(etag, str):
        raise ValueError(f"object {key!r} has ETag {_shown(etag)}, not a string")
    opt: dict[str, str | None] = {}
    for name in ("version_id", "last_modified", "sha256", "copy_etag"):
        value = o.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"object {key!r} has {name} {_shown(value)}, not a string")
        opt[name] = value
    extra = {k: v for k, v in o.items() if k not in _ENTRY_FIELDS}
    return ManifestEntry(
        key,
        size,
        etag.strip('"'),
        opt["version_id"],
        opt["last_modified"],
        opt["sha256"],
        opt["copy_etag"],
        extra,
    )


def parse_manifest(raw: bytes, snap_id: str, where: str = "") -> Manifest:
    """The manifest of snapshot `snap_id`, typed, or a ManifestError naming the first thing wrong with it.

    Refused: not JSON, not an object, another format version, another id, no
    list of objects, an entry without a string key, a whole-number size and a
    string ETag (optional fields must be strings when present), and a key
    named twice (a rollback could not say which entry wins).
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError(snap_id, "not valid JSON", where) from None
    try:
        if not isinstance(doc, dict):
            raise ValueError(f"{_shown(doc)} is not a JSON object")
        if doc.get("v", MANIFEST_VERSION) != MANIFEST_VERSION:
            raise ValueError(f"format version {_shown(doc.get('v'))}, this dr-tasks reads {MANIFEST_VERSION}")
        if doc.get("id") != snap_id:
            raise ValueError(f"names id {_shown(doc.get('id'))}, its key says {snap_id!r}")
        objects = doc.get("objects")
        if not isinstance(objects, list):
            raise ValueError(f"objects is {_shown(objects)}, not a list")
        entries = [_entry(i, o) for i, o in enumerate(objects)]
        seen: set[str] = set()
        for e in entries:
            if e.key in seen:
                raise ValueError(f"names {e.key!r} more than once")
            seen.add(e.key)
        label, ts = _opt_str(doc, "label"), _opt_str(doc, "ts")
        versioned = doc.get("versioned")
        if versioned is not None and not isinstance(versioned, bool):
            raise ValueError(f"versioned is {_shown(versioned)}, not true or false")
        return Manifest(
            id=snap_id,
            label=label or "",
            ts=ts or "",
            bucket=_opt_str(doc, "bucket"),
            prefix=_opt_str(doc, "prefix"),
            source=_opt_str(doc, "source"),
            dest=_opt_str(doc, "dest"),
            versioned=versioned,
            objects=entries,
            extra={k: v for k, v in doc.items() if k not in _FIELDS},
        )
    except ValueError as err:
        raise ManifestError(snap_id, str(err), where) from None
