"""Seed a versioned bucket with a known history, and say what any point in it must look like.

Keys are `state/skills/u<unit>/f<i>.bin` (the layout a dr-tasks host repo has:
units under `state/skills/`), 4 KiB each by default. The history, in order:

1. every key is written once;
2. (next second) 10% are overwritten, 3% deleted;
3. (next second, all inside that one second) same-second ties: keys overwritten
   then deleted, deleted then written again, written twice;
4. T = the second after that; right at T a few keys are overwritten
   ("a version exactly at TS counts" — whether they do depends on the
   LastModified precision the server reports, so the answer is computed from it);
5. (after T) 10% more overwrites, 3% more deletes, 2% new keys.

Every event is recorded with the MD5 of its bytes; after seeding, one listing
gives each event's LastModified as the server reports it, and `state_at(T)` is
then, per key, the chronologically last event with LastModified <= T (absent
when that is a delete). A tool that restores anything else is wrong.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

UNITS_ROOT = "state/skills/"


def body_for(key: str, gen: int, size: int) -> bytes:
    """Deterministic, incompressible bytes for (key, generation)."""
    head = f"{key}#{gen}\n".encode()
    rnd = random.Random(f"{key}#{gen}").randbytes(max(0, size - len(head)))
    return (head + rnd)[:size]


@dataclass
class Event:
    key: str
    kind: str  # "put" | "del"
    md5: str | None
    size: int
    last_modified: datetime | None = None


@dataclass
class History:
    bucket: str
    n: int
    units: int
    size: int
    t: datetime  # the restore point, a whole second, UTC
    events: dict[str, list[Event]] = field(default_factory=dict)
    ties: int = 0
    seconds: float = 0.0

    @property
    def t_iso(self) -> str:
        return self.t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def state_at(self, when: datetime | None = None, prefix: str = "") -> dict[str, tuple[str, int]]:
        """key -> (md5, size) of every key present at `when` (None: now)."""
        out: dict[str, tuple[str, int]] = {}
        for key, evs in self.events.items():
            if not key.startswith(prefix):
                continue
            chosen: Event | None = None
            for ev in evs:
                if when is None or (ev.last_modified is not None and ev.last_modified <= when):
                    chosen = ev
            if chosen is not None and chosen.kind == "put":
                assert chosen.md5 is not None
                out[key] = (chosen.md5, chosen.size)
        return out

    def unit_prefix(self, unit: int) -> str:
        return f"{UNITS_ROOT}u{unit:02d}/"

    def keys_current(self) -> int:
        return len(self.state_at(None))

    def summary(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "n": self.n,
            "units": self.units,
            "object_bytes": self.size,
            "t": self.t_iso,
            "versions": sum(len(v) for v in self.events.values()),
            "keys_now": self.keys_current(),
            "keys_at_t": len(self.state_at(self.t)),
            "same_second_ties": self.ties,
            "seed_seconds": round(self.seconds, 2),
        }


def _sleep_to_next_second(margin: float = 0.02) -> datetime:
    now = time.time()
    time.sleep(int(now) + 1 - now + margin)
    return datetime.fromtimestamp(int(time.time()), timezone.utc)


def seed(
    client: Any,
    n: int,
    units: int = 50,
    size: int = 4096,
    bucket: str | None = None,
    workers: int = 16,
    log: Callable[[str], None] = print,
) -> History:
    started = time.monotonic()
    bucket = bucket or "bench-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = [f"{UNITS_ROOT}u{i % units:02d}/f{i:06d}.bin" for i in range(n)]
    events: dict[str, list[Event]] = {k: [] for k in keys}
    gen: dict[str, int] = dict.fromkeys(keys, 0)
    rng = random.Random(n)

    def put(key: str) -> Event:
        gen[key] = gen.get(key, 0) + 1
        data = body_for(key, gen[key], size)
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return Event(key, "put", hashlib.md5(data).hexdigest(), size)

    def delete(key: str) -> Event:
        client.delete_object(Bucket=bucket, Key=key)
        return Event(key, "del", None, 0)

    def run(ops: Iterable[tuple[Callable[[str], Event], str]]) -> None:
        ops = list(ops)
        # Distinct keys per batch, so events of one key never race each other.
        assert len({k for _f, k in ops}) == len(ops)
        with ThreadPoolExecutor(workers) as pool:
            for ev in pool.map(lambda op: op[0](op[1]), ops):
                events.setdefault(ev.key, []).append(ev)

    log(f"seeding s3://{bucket}: {n} objects x {size} B across {units} units")
    run((put, k) for k in keys)
    live = list(keys)

    def churn(over: float, dele: float) -> None:
        chosen = rng.sample(live, int(len(live) * (over + dele)))
        n_over = int(len(live) * over)
        run([(put, k) for k in chosen[:n_over]] + [(delete, k) for k in chosen[n_over:]])
        for k in chosen[n_over:]:
            live.remove(k)

    _sleep_to_next_second()
    churn(0.10, 0.03)

    # Same-second ties, sequential per key and all right after a second boundary.
    n_tie = max(3, min(20, n // 100))
    tie_keys = rng.sample(live, 3 * n_tie)
    _sleep_to_next_second()
    for i, k in enumerate(tie_keys):
        kind = i % 3
        if kind == 0:  # overwritten, then deleted: absent at T
            events[k] += [put(k), delete(k)]
            live.remove(k)
        elif kind == 1:  # deleted, then written again: present at T, new bytes
            events[k] += [delete(k), put(k)]
        else:  # written twice: the second write wins
            events[k] += [put(k), put(k)]
    t = _sleep_to_next_second(margin=0.0)
    # Exactly at T (whether these count depends on the LastModified precision the server reports).
    for k in rng.sample(live, max(2, n // 500)):
        events[k].append(put(k))
    time.sleep(max(0.0, t.timestamp() + 1.05 - time.time()))
    churn(0.10, 0.03)
    new_keys = [f"{UNITS_ROOT}u{i % units:02d}/f{i:06d}.bin" for i in range(n, n + max(1, n // 50))]
    run((put, k) for k in new_keys)

    hist = History(bucket, n, units, size, t, events)
    _attach_last_modified(client, hist)
    hist.ties = sum(
        1
        for k in tie_keys
        if len({ev.last_modified for ev in events[k][-2:]}) == 1  # both events in one LastModified
    )
    hist.seconds = time.monotonic() - started
    log(f"seeded in {hist.seconds:.1f}s: {hist.summary()}")
    return hist


def _attach_last_modified(client: Any, hist: History) -> None:
    """Give each recorded event the LastModified the server reports (listing order: newest first per key)."""
    listed: dict[str, list[tuple[datetime, bool]]] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=hist.bucket, Prefix=UNITS_ROOT):
        entries = [(v["Key"], v["LastModified"], False) for v in page.get("Versions", [])]
        entries += [(d["Key"], d["LastModified"], True) for d in page.get("DeleteMarkers", [])]
        for key, lm, is_dm in entries:
            listed.setdefault(key, []).append((lm, is_dm))
    for key, evs in hist.events.items():
        got = listed.get(key, [])
        # Versions and markers come in two lists: newest first = LastModified descending,
        # and ties keep chronology because we recorded events in order.
        got.sort(key=lambda e: e[0], reverse=True)
        if len(got) != len(evs):
            raise RuntimeError(f"{key}: the server lists {len(got)} versions, we wrote {len(evs)}")
        for ev, (lm, _is_dm) in zip(reversed(evs), got, strict=True):
            ev.last_modified = lm


def md5_file(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def compare(expected: dict[str, tuple[str, int]], got: dict[str, str]) -> dict[str, Any]:
    """expected: key -> (md5, size); got: key -> md5. The verdict a report shows."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k][0] != got[k])
    ok = not (missing or extra or wrong)
    return {
        "ok": ok,
        "expected": len(expected),
        "got": len(got),
        "missing": len(missing),
        "extra": len(extra),
        "wrong_bytes": len(wrong),
        "examples": (missing[:2] + extra[:2] + wrong[:2]),
    }


def utc(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def plus(dt: datetime, seconds: float) -> datetime:
    return dt + timedelta(seconds=seconds)


# ---------------------------------------------------------------------- one big object
BIG_PART = 8 * 1024 * 1024


@dataclass
class BigObject:
    """One object of `size` random bytes at `key` in `bucket`, and the MD5 every copy must have."""

    bucket: str
    key: str
    size: int
    md5: str

    def summary(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "size": self.size, "md5": self.md5}


def _big_part(i: int, n: int) -> bytes:
    return random.Random(f"big#{i}").randbytes(n)


def seed_big(
    client: Any, size: int, key: str = "state/big/object.bin", log: Callable[[str], None] = print
) -> BigObject:
    """A new versioned bucket holding one object of `size` random bytes, uploaded a part at a time.

    Parts of 8 MiB are generated, hashed and sent one after another (a multipart upload
    when the object is bigger than one part), so the bench never holds the object.
    """
    bucket = "bench-big-" + uuid.uuid4().hex[:10]
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    md5 = hashlib.md5()
    started = time.monotonic()
    if size <= BIG_PART:
        data = _big_part(0, size)
        md5.update(data)
        client.put_object(Bucket=bucket, Key=key, Body=data)
    else:
        up = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = []
        for i, off in enumerate(range(0, size, BIG_PART)):
            data = _big_part(i, min(BIG_PART, size - off))
            md5.update(data)
            r = client.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=i + 1, Body=data)
            parts.append({"PartNumber": i + 1, "ETag": r["ETag"]})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
    log(f"seeded s3://{bucket}/{key}: {size} B in {time.monotonic() - started:.1f}s")
    return BigObject(bucket, key, size, md5.hexdigest())


def stream_md5(client: Any, bucket: str, key: str) -> tuple[str, int]:
    """(MD5, size) of an object, read through 1 MiB at a time."""
    md5 = hashlib.md5()
    size = 0
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        for chunk in body.iter_chunks(1 << 20):
            md5.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    return md5.hexdigest(), size
