"""The bench's CI smoke: `python -m bench --quick` (N = 200, one run each) on moto and Ceph RGW.

It proves the harness still runs end to end — servers started, history seeded,
every scenario measured (the one-object backup too, at 16 MiB), report files
written — and that our own tool is reported correct everywhere. Peers that are not installed are reported as
skipped, never as failures; the full comparison is `inv bench` (bench/README.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "bench" / "out" / "smoke"

pytestmark = [pytest.mark.rgw, pytest.mark.timeout(240)]


def test_bench_quick_reports_ours_correct_on_moto_and_rgw(ceph_packages: None) -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    # Ours and the boto3 floor only: each peer run would add ~25 s on 2 shared cores, and the
    # smoke exists so the harness cannot rot, not to compare (that is `inv bench`).
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--peers=none", f"--out={OUT}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr

    results = json.loads((OUT / "results.json").read_text())
    md = (OUT / "results.md").read_text()
    assert "| **dr-tasks** |" in md
    servers = {s["server"] for s in results["scenarios"]}
    assert servers == {"moto", "rgw"}, results["meta"].get("servers_skipped")
    names = {s["scenario"] for s in results["scenarios"]}
    assert {"snapshot", "restore all units", "backup first", "backup no-change", "backup 1%-changed"} <= names
    assert not results["meta"]["missing_scenarios"]
    for sc in results["scenarios"]:
        ours = sc["tools"]["dr-tasks"]
        assert ours["correct"], (sc["server"], sc["scenario"], ours["verdicts"])
        assert ours["median_s"] and ours["median_s"] > 0
        # Counted at the server side, through the proxy: every job moves each object once.
        assert ours["requests_total_per_object"] and ours["requests_total_per_object"] > 0
        floor = sc["tools"]["boto3 floor"]
        assert floor["correct"], (sc["server"], sc["scenario"], floor["verdicts"])
    # The one-object backups (RGW only): a 16 MiB object in quick mode, and a 4 KiB one to compare
    # peak RSS with; each copy checked by the MD5 of what the destination holds.
    big = {sc["bytes"]: sc for sc in results["scenarios"] if sc.get("bytes")}
    assert set(big) == {16 << 20, 4 << 10}, sorted(big)
    for sc in big.values():
        assert sc["server"] == "rgw" and sc["objects"] == 1
        ours = sc["tools"]["dr-tasks"]
        assert ours["peak_rss_mib"] and ours["mib_per_s"] is not None
        # A 16 MiB object goes as a multipart upload (8 MiB parts), counted at the destination.
        if sc["bytes"] > 8 << 20:
            assert ours["requests"].get("rgw-b:UploadPart") == 2, ours["requests"]
    assert "Peak RSS against object size" in md
    # Skipped peers are named with the reason, not failed.
    skipped = results["meta"]["peers"]["skipped"]
    assert skipped, "peers that did not run must be named as skipped"
    assert results["ceilings"] and all(c["requests_per_s"] > 0 for c in results["ceilings"])
