"""The bench's before/after tables: ours against each baseline, and the first baseline against later ones."""

from __future__ import annotations

from typing import Any

from bench.report import against_baseline
from bench.scenarios import FLOOR, OURS


def _results(times: dict[str, float], baselines: list[str]) -> dict[str, Any]:
    tools = {name: {"median_s": s} for name, s in times.items()}
    return {"meta": {"baselines": baselines}, "scenarios": [{"server": "rgw", "scenario": "snapshot", "tools": tools}]}


def test_one_baseline_gives_ours_against_it_only():
    lines = against_baseline(_results({FLOOR: 10.0, OURS: 11.0, "dr-tasks@old": 10.0}, ["dr-tasks@old"]))
    assert "| rgw: snapshot | dr-tasks@old | 1.000 | 1.100 | +10.0 % |" in lines
    assert not any("later baselines" in line for line in lines)


def test_two_baselines_also_compare_the_first_with_the_second_on_the_same_floor():
    times = {FLOOR: 10.0, OURS: 12.0, "dr-tasks@old": 10.0, "dr-tasks@new": 9.5}
    lines = against_baseline(_results(times, ["dr-tasks@old", "dr-tasks@new"]))
    at = next(i for i, line in enumerate(lines) if "later baselines" in line)
    assert "| rgw: snapshot | dr-tasks@new | 1.000 | 0.950 | -5.0 % |" in lines[at:]
