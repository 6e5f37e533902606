"""Point-in-time arguments (ISO 8601 with a timezone) and durations (`1w`, `1d12h`, `90m`): the one parser of each.

A restore picks versions by comparing LastModified (UTC) with the time the
operator gives, so a time without a zone would silently mean different
instants on different machines. It is refused, like words (`yesterday`) and
impossible dates, with an example of the accepted form. (A snapshot id where
a TS is expected is looked up in the index by the restore: this module reads
no file.)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import DrError

# Extended form, e.g. 2026-04-15T18:00:00Z, 2026-04-15T18:00:00.250+02:00,
# 2026-04-15T18:00Z; a space instead of the T is accepted (RFC 3339 allows it).
_EXTENDED = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[Tt ](?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
# Basic form, e.g. 20260415T180000Z: the form the holding dir's name uses,
# so a name can be pasted back.
_BASIC = re.compile(
    r"(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})[Tt](?P<h>\d{2})(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?:\d{2})?)?"
)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

# One or more number-unit parts, largest unit first, each unit once: 1w, 1d12h, 1.5d, 2h30m.
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)w)?(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?")
_UNITS = (timedelta(weeks=1), timedelta(days=1), timedelta(hours=1), timedelta(minutes=1))

FORMS = "ISO 8601 with a timezone, e.g. 2026-04-15T18:00:00Z (UTC) or 2026-04-15T18:00:00+02:00"


def _example(now: datetime | None = None) -> str:
    """A concrete, copy-pasteable example: this time yesterday, in UTC."""
    when = (now or datetime.now(timezone.utc)) - timedelta(days=1)
    return iso_utc(when.replace(microsecond=0))


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def parse_ts(text: str, now: datetime | None = None) -> datetime:
    """The instant `text` names, as an aware UTC datetime, or a DrError that shows the accepted form."""
    if not isinstance(text, str) or not text.strip():
        raise DrError("no point in time given", f"pass {FORMS}; this time yesterday is {_example(now)}")
    raw = text.strip()
    m = _EXTENDED.fullmatch(raw) or _BASIC.fullmatch(raw)
    if m is None:
        if _DATE_ONLY.fullmatch(raw):
            raise DrError(
                f"timestamp {_shown(raw)} has no time of day and no timezone",
                f"pass {FORMS}; for the start of that day in UTC: {raw}T00:00:00Z",
            )
        raise DrError(
            f"{_shown(raw)} is not an ISO 8601 timestamp or a snapshot id",
            f"pass {FORMS}, or a snapshot id from `inv dr.list`; this time yesterday is {_example(now)}",
        )
    if m.group("tz") is None:
        raise DrError(
            f"timestamp {_shown(raw)} has no timezone, so it names a different instant on every machine",
            f"add one: {raw}Z for UTC, or an offset such as {raw}+02:00",
        )
    frac = (m.group("f") or "").ljust(6, "0")[:6]
    try:
        local = datetime(
            int(m.group("y")),
            int(m.group("mo")),
            int(m.group("d")),
            int(m.group("h")),
            int(m.group("mi")),
            int(m.group("s") or 0),
            int(frac or 0),
            tzinfo=_zone(m.group("tz")),
        )
    except ValueError as err:
        raise DrError(
            f"timestamp {_shown(raw)} is not a real date and time ({err})",
            f"pass {FORMS}; this time yesterday is {_example(now)}",
        ) from None
    try:
        return local.astimezone(timezone.utc)
    except OverflowError:
        # 0001-01-01T00:00+01:00 is a valid local time whose UTC instant is before year 1.
        raise DrError(
            f"timestamp {_shown(raw)} is outside the years 1 to 9999 once converted to UTC",
            f"pass {FORMS}; this time yesterday is {_example(now)}",
        ) from None


def _zone(tz: str) -> timezone:
    if tz in ("Z", "z"):
        return timezone.utc
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        # datetime() reports it as a ValueError, which parse_ts words for the user.
        raise ValueError(f"UTC offset {tz} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _fraction(dt: datetime) -> str:
    return f".{dt.microsecond:06d}".rstrip("0") if dt.microsecond else ""


def iso_utc(dt: datetime, *, whole_seconds: bool = False) -> str:
    """2026-04-15T18:00:00Z, with the fraction of a second only when there is one.

    `whole_seconds` drops the fraction: the form of index rows, manifests and
    snapshot ids (see `parse_iso`).
    """
    u = dt.astimezone(timezone.utc).replace(tzinfo=None)
    if whole_seconds:
        u = u.replace(microsecond=0)
    # isoformat is C: a restore formats one of these per file.
    text = u.isoformat()
    return (text.rstrip("0") if u.microsecond else text) + "Z"


def compact_utc(dt: datetime) -> str:
    """20260415T180000Z: the instant in a holding dir's name (a fraction only when there is one)."""
    u = dt.astimezone(timezone.utc)
    return u.strftime("%Y%m%dT%H%M%S") + _fraction(u) + "Z"


def parse_iso(text: str) -> datetime:
    """The instant of a whole-second UTC stamp (`iso_utc(dt, whole_seconds=True)`); ValueError otherwise."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def parse_duration(text: str, flag: str) -> timedelta:
    """`1w`, `6d`, `1d12h`, `90m`, `1.5d`, `2h30m` -> timedelta; anything else is a DrError naming the flag.

    Units are w (weeks), d, h and m (minutes), largest first, each once: `1h1d`
    or `6D` are refused rather than guessed at (`M` would be months to some).
    """
    # "6 d" read as 6d before 1w and 1d12h were accepted: spaces still mean nothing.
    raw = re.sub(r"\s+", "", text) if isinstance(text, str) else ""
    m = _DURATION.fullmatch(raw)
    examples = f"e.g. {flag}=6d, {flag}=1w, {flag}=1d12h or {flag}=90m"
    if not raw or m is None:
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
        raise DrError(
            f"{flag}={shown} is not a duration",
            f"use numbers with units w (weeks), d, h or m (minutes), largest first: {examples}",
        )
    value = sum((float(n) * unit for n, unit in zip(m.groups(), _UNITS, strict=True) if n is not None), timedelta(0))
    if value <= timedelta(0):
        raise DrError(f"{flag}={raw} must be longer than zero", f"use {examples}")
    return value
