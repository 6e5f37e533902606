"""TS for `dr.restore`: ISO 8601 with a timezone, anything else refused with an example."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dr_tasks.errors import DrError
from dr_tasks.timeparse import compact_utc, iso_utc, parse_duration, parse_ts

UTC = timezone.utc
AT = datetime(2026, 4, 15, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-04-15T18:00:00Z", AT),
        ("2026-04-15t18:00:00z", AT),
        ("2026-04-15 18:00:00Z", AT),
        ("2026-04-15T18:00Z", AT),
        ("2026-04-15T20:00:00+02:00", AT),
        ("2026-04-15T20:00:00+0200", AT),
        ("2026-04-15T20:00:00+02", AT),
        ("2026-04-15T13:30:00-04:30", AT),
        ("2026-04-15T18:00:00.250Z", AT.replace(microsecond=250000)),
        ("2026-04-15T18:00:00,5Z", AT.replace(microsecond=500000)),
        ("2026-04-15T18:00:00.123456789Z", AT.replace(microsecond=123456)),
        ("20260415T180000Z", AT),  # the holding dir's own form, pasted back
        ("20260415T200000+0200", AT),
        ("  2026-04-15T18:00:00Z\n", AT),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_accepted_forms(text: str, expected: datetime) -> None:
    got = parse_ts(text)
    assert got == expected and got.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("2026-04-15T18:00:00", "has no timezone"),
        ("2026-04-15T18:00", "has no timezone"),
        ("20260415T180000", "has no timezone"),
        ("2026-04-15", "no time of day and no timezone"),
        ("yesterday", "is not an ISO 8601 timestamp"),
        ("now", "is not an ISO 8601 timestamp"),
        ("1713204000", "is not an ISO 8601 timestamp"),
        ("2026-04-15T18:00:00 UTC", "is not an ISO 8601 timestamp"),
        ("15/04/2026 18:00", "is not an ISO 8601 timestamp"),
        ("2026-02-30T18:00:00Z", "is not a real date and time"),
        ("2025-02-29T18:00:00Z", "is not a real date and time"),
        ("2026-13-01T18:00:00Z", "is not a real date and time"),
        ("2026-04-15T24:00:00Z", "is not a real date and time"),
        ("2026-04-15T18:60:00Z", "is not a real date and time"),
        ("2026-04-15T18:00:61Z", "is not a real date and time"),
        ("2026-04-15T18:00:00+24:00", "is not a real date and time"),
        ("2026-04-15T18:00:00+02:75", "is not a real date and time"),
        ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999"),
        ("9999-12-31T23:59:59-01:00", "outside the years 1 to 9999"),
        ("", "no point in time given"),
        ("x" * 500, "is not an ISO 8601 timestamp"),
    ],
)
def test_refused_forms_say_what_to_type(text: str, needle: str) -> None:
    with pytest.raises(DrError) as err:
        parse_ts(text, now=AT)
    assert needle in err.value.message
    assert err.value.hint and "Z" in err.value.hint
    assert len(err.value.message) < 200  # a huge argument is not echoed whole


def test_naive_hint_offers_the_same_time_with_a_zone() -> None:
    with pytest.raises(DrError) as err:
        parse_ts("2026-04-15T18:00:00")
    assert "2026-04-15T18:00:00Z" in err.value.hint and "2026-04-15T18:00:00+02:00" in err.value.hint


def test_garbled_hint_is_a_concrete_example() -> None:
    with pytest.raises(DrError) as err:
        parse_ts("yesterday", now=AT)
    assert "2026-04-14T18:00:00Z" in err.value.hint
    assert parse_ts("2026-04-14T18:00:00Z") == AT - timedelta(days=1)


def test_formats() -> None:
    assert iso_utc(AT) == "2026-04-15T18:00:00Z"
    assert compact_utc(AT) == "20260415T180000Z"
    assert compact_utc(AT.replace(microsecond=250000)) == "20260415T180000.25Z"
    assert iso_utc(AT.replace(microsecond=123000)) == "2026-04-15T18:00:00.123Z"
    plus2 = AT.astimezone(timezone(timedelta(hours=2)))
    assert compact_utc(plus2) == "20260415T180000Z"
    # every printed form parses back to the same instant
    for dt in (AT, AT.replace(microsecond=1), AT.replace(microsecond=999999)):
        assert parse_ts(iso_utc(dt)) == dt and parse_ts(compact_utc(dt)) == dt


# ---------------------------------------------------------------------- durations: the one parser, in timeparse.py
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        ("6d", timedelta(days=6)),
        ("1.5d", timedelta(hours=36)),
        ("2w3d", timedelta(days=17)),
        (" 1d 12h ", timedelta(hours=36)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "--if-older-than") == expected


@pytest.mark.parametrize("text", ["1h1d", "1d1d", "6", "1 week", "6D", "1M", "-1d", "", "1.d"])
def test_a_bad_duration_names_what_was_given_and_examples_that_work(text: str) -> None:
    with pytest.raises(DrError) as err:
        parse_duration(text, "--if-older-than")
    assert f"--if-older-than={text.replace(' ', '')!r}" in err.value.message or repr(text) in err.value.message
    for example in ("--if-older-than=6d", "--if-older-than=1w", "--if-older-than=1d12h", "--if-older-than=90m"):
        assert example in err.value.hint
    for again in err.value.hint.split(": e.g. ")[1].replace(" or ", ", ").split(", "):
        assert parse_duration(again.split("=", 1)[1], "--x") > timedelta(0)  # the examples work


def test_a_zero_duration_is_refused() -> None:
    with pytest.raises(DrError, match="longer than zero"):
        parse_duration("0w0d", "--max-snapshot-age")


def test_a_word_is_neither_a_timestamp_nor_a_snapshot_id() -> None:
    with pytest.raises(DrError) as err:
        parse_ts("last tuesday", now=AT)
    assert "not an ISO 8601 timestamp or a snapshot id" in err.value.message
    assert "snapshot id from `inv dr.list`" in err.value.hint


# ---------------------------------------------------------------------- what a progress bar shows beside itself
def test_progress_count_text() -> None:
    from dr_tasks.progress import count_text

    assert count_text(0, None, 0, 1.0) == "listing"
    assert count_text(0, None, 1000, 2.0) == "1,000 listed"
    assert count_text(340, None, 1000, 2.0) == "1,000 listed, 340 done"
    assert count_text(0, 1001, 1001, 0.0) == "0/1,001, ETA ?"
    assert count_text(500, 1000, 1000, 10.0) == "500/1,000, 50/s, ETA 0:00:10"
    assert count_text(3, 10, 10, 2.0) == "3/10, 1.5/s, ETA 0:00:05"
