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


def test_the_scaling_section_gives_peak_rss_at_each_n_and_its_growth_per_object():
    from bench.report import markdown

    pts = [
        {"server": "rgw", "scenario": "snapshot", "tool": "dr-tasks", "n": n, "median_s": n / 1000, "peak_rss_mib": m}
        for n, m in ((10_000, 60.0), (100_000, 150.0))
    ]
    results = {
        "meta": {"command": "x", "started": "t", "machine": "m", "runs": 1, "peers": {}, "baselines": []},
        "scenarios": [],
        "scaling": pts,
    }
    text = markdown(results).splitlines()
    at = next(i for i, line in enumerate(text) if line.startswith("Peak RSS MiB"))
    assert "| N=10000 | N=100000 | MiB/1000 objects 10000→100000 |" in text[at + 2]
    # 90 MiB more over 90,000 more objects: 1 MiB per 1,000.
    assert text[at + 4] == "| rgw | snapshot | dr-tasks | 60.00 | 150.00 | 1.00 |"
