"""The drill report renders: in a real headless browser (Debian's chromium), not just as a file that exists."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dr_tasks.ops.drill import RECOVERY_STEPS, DrillResult, Step
from dr_tasks.ops.drill_live import RECOVERY_STEPS as LIVE_RECOVERY
from dr_tasks.ops.drill_live import LiveDrillResult
from dr_tasks.ops.drill_proof import FailedKey
from dr_tasks.report_html import FAIL_COLOR, PASS_COLOR, render_report, write_report
from tests.support.browser import (
    BrowserUnavailable,
    dump_dom,
    ensure_browser,
    install_allowed,
    png_pixels,
    screenshot,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def browser() -> str:
    try:
        return ensure_browser(install_allowed())
    except BrowserUnavailable as err:
        if IN_CI:
            pytest.fail(f"a headless browser is mandatory under CI and could not be had: {err}")
        pytest.skip(f"no headless browser: {err}")


def live_result(ok: bool = True) -> LiveDrillResult:
    r = LiveDrillResult(
        "drill-2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z", "2026-12-07T09:00:00Z-base", "backup",
        "s3://cold/snapshots/2026-12-07T09:00:00Z-base/", seed=7, sample=None,
    )  # fmt: skip
    r.steps = [
        Step("read the manifest", 0.4, True, "5 objects", 0),
        Step("bring back", 2.5, True, "5 objects, 3000 bytes", 3000),
        Step("check every byte", 0.6, ok, "every byte" if ok else "1 of 5 objects are not the bytes recorded", 3000),
    ]
    if ok:
        r.steps.append(Step("point in time: alpha <&>", 0.9, True, "3 objects", 1200))
    else:
        r.failed = [FailedKey("state/skills/alpha/a.txt", "sha256 differs")]
    r.objects, r.checked, r.bytes, r.seconds, r.ttfb_seconds = 5, 5, 3000, 4.4, 0.05
    return r


def hex_color(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def test_the_page_is_self_contained_and_escapes_names() -> None:
    html = render_report(live_result(), "live drill", LIVE_RECOVERY)
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    assert "alpha &lt;&amp;&gt;" in html and "<&>" not in html
    assert "RTO" in html and "3.50s" in html  # read + bring back + check


def test_live_report_renders_in_a_browser(browser: str, tmp_path: Path) -> None:
    result = live_result(ok=False)
    failed = [(f.key, f.why) for f in result.failed]
    page = write_report(tmp_path / "live.html", result, "live drill of x", LIVE_RECOVERY, failed)
    dom = dump_dom(browser, page)
    assert "<code>state/skills/alpha/a.txt</code>: sha256 differs" in dom
    svg = dom[dom.index("<svg") : dom.index("</svg>")]
    for name in ("read the manifest", "bring back", "check every byte", "bytes recovered"):
        assert name in svg, name
    assert 'id="verdict">FAIL<' in dom
    assert 'class="step fail"' in svg and svg.count('class="step pass"') == 2
    width, height, pixels = png_pixels(screenshot(browser, page, tmp_path / "live.png", (900, 700)))
    assert (width, height) == (900, 700)
    # The bars were painted: the pass green and the fail red both cover a good area, and the page is not blank.
    assert pixels.count(hex_color(PASS_COLOR)) > 500
    assert pixels.count(hex_color(FAIL_COLOR)) > 500
    assert len(set(pixels)) > 20


def test_embedded_drill_report_renders_in_a_browser(browser: str, tmp_path: Path) -> None:
    result = DrillResult(
        steps=[Step("snapshot", 0.5, True, "ok"), Step("restore a unit", 0.2, True, "ok", 900)]
        + [Step(name, 0.3, True, "ok", 5000) for name in RECOVERY_STEPS[1:]],
        seconds=1.3,
    )
    page = write_report(tmp_path / "embedded.html", result, "embedded recovery drill", RECOVERY_STEPS)
    dom = dump_dom(browser, page)
    assert 'id="verdict">PASS<' in dom and "restore a unit" in dom and "recover it from the backup" in dom
    _, _, pixels = png_pixels(screenshot(browser, page, tmp_path / "embedded.png", (900, 600)))
    assert pixels.count(hex_color(PASS_COLOR)) > 500 and hex_color(FAIL_COLOR) not in pixels
