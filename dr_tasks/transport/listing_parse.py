"""Reading a listing page once, in ElementTree's C parser, into `ObjectVersion`s (see `_parse_listing`)."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote_plus

from .. import internals
from ..internals import timestamp_parser
from .model import ObjectVersion

# Set while our own code sends a listing request on this thread: only then
# does `_parse_listing` take over the page. Other users of `S3.client` (the
# Python API, tests) keep botocore's usual "Versions" / "Contents" lists.
_own_listing = threading.local()


def _parse_listing(
    operation_model: Any, response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """Read a ListObjectVersions / ListObjectsV2 page once, in ElementTree's C parser.

    botocore read each 1,000-entry page three times in Python (an "is this a
    200 that is really an error" parse, its own parse, then its shape walk:
    most of a no-change backup's work; bench/README.md, finding 15). Here the
    entries become `ObjectVersion`s in the server's order (which botocore's
    split into "Versions" and "DeleteMarkers" loses, and which decides
    same-timestamp ties) under "DrEntries"; the body botocore goes on to parse
    keeps only the page's other fields (IsTruncated, the next markers,
    CommonPrefixes), so its own checks and key decoding still apply to them.
    """
    body = response_dict.get("body")
    if (
        not getattr(_own_listing, "on", False)
        or operation_model.name not in ("ListObjectVersions", "ListObjectsV2")
        or response_dict.get("status_code") != 200
        or not body
    ):
        return
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return  # a torn page: botocore's own check makes it a retried 500
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag[len(ns) :] == "Error":
        return
    raw: list[tuple[ET.Element, str]] = []
    rest = ET.Element(root.tag)
    for el in root:
        kind = el.tag[len(ns) :]
        if kind in ("Version", "DeleteMarker", "Contents"):
            raw.append((el, kind))
        else:
            rest.append(el)
    # botocore asks for EncodingType=url and decodes the keys it parses; so do we.
    encoded = root.findtext(ns + "EncodingType") == "url"
    parse_ts = timestamp_parser()
    tag_key, tag_vid, tag_size, tag_etag, tag_lm, tag_latest = (
        ns + t for t in ("Key", "VersionId", "Size", "ETag", "LastModified", "IsLatest")
    )
    entries: list[ObjectVersion] = []
    for el, kind in raw:
        key = vid = etag = lm = ""
        size = 0
        # ListObjectsV2 lists only current objects.
        latest = kind == "Contents"
        for child in el:
            tag, text = child.tag, child.text or ""
            if tag == tag_key:
                key = unquote_plus(text) if encoded else text
            elif tag == tag_vid:
                vid = text
            elif tag == tag_size:
                size = int(text)
            elif tag == tag_etag:
                etag = text
            elif tag == tag_lm:
                lm = text
            elif tag == tag_latest:
                latest = text == "true"
        if kind == "DeleteMarker":
            entries.append(ObjectVersion(key, vid or None, 0, "", parse_ts(lm), latest, True))
        else:
            entries.append(ObjectVersion(key, vid or None, size, etag, parse_ts(lm), latest))
    customized_response_dict["DrEntries"] = entries
    response_dict["body"] = ET.tostring(rest)


def install(events: Any) -> None:
    """Attach `_parse_listing` to a client's events, ahead of botocore's check for a 200 that is an error."""
    internals.register_before_200_check(events, "before-parse.s3.*", _parse_listing)
