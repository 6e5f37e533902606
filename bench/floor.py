"""The client-side floor: a plain boto3 thread pool doing the minimum requests for each job.

`python -m bench.floor snapshot|restore|backup ...` (credentials from the
environment). No manifest, no index, no safety: only the requests any tool
must send, so every measured figure can be read against it.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

# Objects bigger than this are copied part by part (backup): the same 8 MiB dr-tasks uses.
PART = 8 * 1024 * 1024


def client(endpoint: str, pool: int, prefix: str = "") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ.get(f"{prefix}AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get(f"{prefix}AWS_SECRET_ACCESS_KEY"),
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=pool,
            retries={"mode": "standard", "max_attempts": 8},
        ),
    )


def list_current(c: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = (o["Size"], o["ETag"])
    return out


def snapshot(a: argparse.Namespace) -> int:
    c = client(a.endpoint, a.concurrency)
    keys = list(list_current(c, a.bucket, a.prefix))

    def copy(key: str) -> None:
        c.copy_object(Bucket=a.bucket, Key=a.dest + key[len(a.prefix) :], CopySource={"Bucket": a.bucket, "Key": key})

    with ThreadPoolExecutor(a.concurrency) as pool:
        list(pool.map(copy, keys))
    print(f"copied {len(keys)}")
    return 0


def _in_server_order(c: Any) -> list[bytes]:
    """Capture each ListObjectVersions page's raw XML: boto3 splits versions and delete markers
    into two lists and so loses the server's newest-first order, which decides same-second ties."""
    pages: list[bytes] = []

    def hook(http_response: Any, **_: Any) -> None:
        pages.append(http_response.content)

    c.meta.events.register("after-call.s3.ListObjectVersions", hook)
    return pages


def restore(a: argparse.Namespace) -> int:
    import xml.etree.ElementTree as ET

    c = client(a.endpoint, a.concurrency)
    raw = _in_server_order(c)
    at = datetime.strptime(a.at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    chosen: dict[str, str | None] = {}
    for _page in c.get_paginator("list_object_versions").paginate(Bucket=a.bucket, Prefix=a.prefix):
        entries = []
        page = ET.fromstring(raw.pop())
        # boto3 asks for encoding-type=url: RGW then sends keys percent-encoded (moto does not).
        encoded = any(el.tag.endswith("EncodingType") and el.text == "url" for el in page)
        for pos, el in enumerate(page):
            tag = el.tag.rsplit("}", 1)[-1]
            if tag not in ("Version", "DeleteMarker"):
                continue
            ns = el.tag[: -len(tag)]
            lm = datetime.fromisoformat((el.findtext(ns + "LastModified") or "").replace("Z", "+00:00"))
            latest = el.findtext(ns + "IsLatest") == "true"
            vid = el.findtext(ns + "VersionId") if tag == "Version" else None
            key = el.findtext(ns + "Key") or ""
            entries.append((unquote(key) if encoded else key, -lm.timestamp(), not latest, pos, lm, vid))
        # Newest first per key; among equal timestamps the latest entry, then the server's order
        # (AWS and RGW interleave versions and markers truly; moto lists all markers last).
        for key, _t, _l, _p, lm, vid in sorted(entries):
            # The first entry at or before TS decides; a delete marker means absent.
            if key not in chosen and lm <= at:
                chosen[key] = vid
    todo = [(k, v) for k, v in chosen.items() if v is not None]

    def get(item: tuple[str, str]) -> None:
        key, vid = item
        path = os.path.join(a.dest, key[len(a.prefix) :])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        body = c.get_object(Bucket=a.bucket, Key=key, VersionId=vid)["Body"].read()
        with open(path, "wb") as f:
            f.write(body)

    with ThreadPoolExecutor(a.concurrency) as pool:
        list(pool.map(get, todo))
    print(f"restored {len(todo)}")
    return 0


def backup(a: argparse.Namespace) -> int:
    src = client(a.endpoint, a.concurrency)
    dst = client(a.dest_endpoint, a.concurrency, prefix="DEST_")
    have = list_current(src, a.bucket, a.prefix)
    there = list_current(dst, a.dest_bucket, a.prefix)
    todo = [k for k, v in have.items() if there.get(k) != v]

    def one(key: str) -> None:
        if have[key][0] > PART:
            return streamed(key)
        body = src.get_object(Bucket=a.bucket, Key=key)["Body"].read()
        dst.put_object(Bucket=a.dest_bucket, Key=key, Body=body)

    def streamed(key: str) -> None:
        # A big object goes one part at a time (a multipart upload), as any client that
        # must not hold the object would do: memory stays one part, whatever the size.
        body = src.get_object(Bucket=a.bucket, Key=key)["Body"]
        up = dst.create_multipart_upload(Bucket=a.dest_bucket, Key=key)["UploadId"]
        parts = []
        while chunk := read_full(body, PART):
            r = dst.upload_part(Bucket=a.dest_bucket, Key=key, UploadId=up, PartNumber=len(parts) + 1, Body=chunk)
            parts.append({"PartNumber": len(parts) + 1, "ETag": r["ETag"]})
            del chunk
        dst.complete_multipart_upload(Bucket=a.dest_bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})

    with ThreadPoolExecutor(a.concurrency) as pool:
        list(pool.map(one, todo))
    print(f"copied {len(todo)} skipped {len(have) - len(todo)}")
    return 0


def read_full(body: Any, n: int) -> bytes:
    """`n` bytes (fewer only at the end): a short part in the middle would be refused as too small."""
    chunks: list[bytes] = []
    got = 0
    while got < n and (piece := body.read(n - got)):
        chunks.append(piece)
        got += len(piece)
    return b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("snapshot", "restore", "backup"))
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--dest", default="", help="snapshot: key prefix; restore: local dir")
    ap.add_argument("--dest-endpoint", default="")
    ap.add_argument("--dest-bucket", default="")
    ap.add_argument("--at", default="")
    # dr-tasks' default `concurrency` (not imported: the floor loads boto3 and nothing else).
    ap.add_argument("--concurrency", type=int, default=32)
    a = ap.parse_args(argv)
    return {"snapshot": snapshot, "restore": restore, "backup": backup}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
