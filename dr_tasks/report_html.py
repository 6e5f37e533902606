"""A drill's report as one self-contained HTML file with inline SVG: no script, no network, no dependency.

It draws what a drill result holds (the embedded `dr.drill` and `dr.drill
--live` alike): a timeline of the steps (time across, one row a step, green
when it passed, red when it failed, the recovery steps outlined), the bytes
recovered as time went on, and the RTO. The table below it says the same in
words.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Sequence
from html import escape
from pathlib import Path
from typing import Protocol

# The plot leaves RIGHT_W on its right for the last bar's seconds and the last tick.
WIDTH, LABEL_W, ROW_H, PAD, RIGHT_W = 860, 230, 26, 14, 80
PASS_COLOR, FAIL_COLOR, BYTES_COLOR = "#2e7d32", "#c62828", "#1565c0"


class ReportStep(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def seconds(self) -> float: ...
    @property
    def ok(self) -> bool: ...
    @property
    def detail(self) -> str: ...
    @property
    def bytes(self) -> int: ...


class ReportResult(Protocol):
    @property
    def steps(self) -> Sequence[ReportStep]: ...
    @property
    def ok(self) -> bool: ...
    @property
    def seconds(self) -> float: ...
    @property
    def rto_seconds(self) -> float: ...


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def timeline_svg(result: ReportResult, recovery: Collection[str] = ()) -> str:
    """The steps on a time axis, then the bytes recovered over the same axis."""
    steps = list(result.steps)
    total = max(sum(s.seconds for s in steps), 1e-3)
    plot_w = WIDTH - LABEL_W - RIGHT_W
    scale = plot_w / total
    top = PAD + 16
    bytes_h = 90
    height = top + ROW_H * len(steps) + 30 + bytes_h + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="drill timeline" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{LABEL_W}" y="{PAD}" font-weight="bold">time (s) →</text>',
        f'<text x="{LABEL_W + plot_w}" y="{PAD}" text-anchor="end">outlined: the recovery steps, '
        f"RTO {result.rto_seconds:.2f}s</text>",
    ]
    start = 0.0
    for i, s in enumerate(steps):
        y = top + i * ROW_H
        x = LABEL_W + start * scale
        w = max(s.seconds * scale, 2.0)
        color = PASS_COLOR if s.ok else FAIL_COLOR
        outline = ' stroke="#000" stroke-width="2"' if s.name in recovery else ""
        mark = "✓" if s.ok else "✗"
        out.append(f'<text class="step-label" x="{LABEL_W - 8}" y="{y + 17}" text-anchor="end">{escape(s.name)}</text>')
        out.append(
            f'<rect class="step {"pass" if s.ok else "fail"}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" '
            f'height="{ROW_H - 8}" fill="{color}"{outline}><title>{escape(s.detail)}</title></rect>'
        )
        tx = min(x + w + 4, WIDTH - RIGHT_W + 10)
        out.append(f'<text x="{tx:.1f}" y="{y + 17}" fill="{color}">{mark} {s.seconds:.2f}s</text>')
        start += s.seconds
    axis_y = top + ROW_H * len(steps) + 4
    out.append(f'<line x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + plot_w}" y2="{axis_y}" stroke="#555"/>')
    for k in range(5):
        t = total * k / 4
        out.append(f'<text x="{LABEL_W + t * scale:.1f}" y="{axis_y + 14}" text-anchor="middle">{t:.2f}</text>')
    out.extend(_bytes_curve(steps, scale, plot_w, axis_y + 30, bytes_h))
    out.append("</svg>")
    return "\n".join(out)


def _bytes_curve(steps: list[ReportStep], scale: float, plot_w: float, y0: float, h: float) -> list[str]:
    """Cumulative bytes recovered, reaching each step's count at its end."""
    most = max(sum(s.bytes for s in steps), 1)
    base = y0 + h
    points = [f"{LABEL_W},{base}"]
    at, got = 0.0, 0
    for s in steps:
        at += s.seconds
        got += s.bytes
        points.append(f"{LABEL_W + at * scale:.1f},{base - h * got / most:.1f}")
    return [
        f'<text class="step-label" x="{LABEL_W - 8}" y="{y0 + h / 2}" text-anchor="end">bytes recovered</text>',
        f'<line x1="{LABEL_W}" y1="{base}" x2="{LABEL_W + plot_w}" y2="{base}" stroke="#555"/>',
        f'<polyline fill="none" stroke="{BYTES_COLOR}" stroke-width="2" points="{" ".join(points)}"/>',
        f'<text x="{LABEL_W + 4}" y="{y0 + 10}" fill="{BYTES_COLOR}">{_size(got)}</text>',
    ]


def _failed_list(failed: Sequence[tuple[str, str]]) -> str:
    if not failed:
        return ""
    items = "\n".join(f"<li><code>{escape(key)}</code>: {escape(why)}</li>" for key, why in failed)
    return f'<h2>Did not come back ({len(failed)})</h2>\n<ul id="failed">\n{items}\n</ul>'


def render_report(
    result: ReportResult, title: str, recovery: Collection[str] = (), failed: Sequence[tuple[str, str]] = ()
) -> str:
    """The whole HTML page for `result`; `failed` names the keys that did not come back, and why."""
    verdict = "PASS" if result.ok else "FAIL"
    color = PASS_COLOR if result.ok else FAIL_COLOR
    rows = "\n".join(
        f'<tr><td>{escape(s.name)}</td><td style="color:{PASS_COLOR if s.ok else FAIL_COLOR}">'
        f"{'pass' if s.ok else 'FAIL'}</td><td>{s.seconds:.3f}</td><td>{_size(s.bytes)}</td>"
        f"<td>{escape(s.detail)}</td></tr>"
        for s in result.steps
    )
    recovered = sum(s.bytes for s in result.steps)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}: {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
.verdict{{color:#fff;background:{color};padding:2px 10px;border-radius:4px}}</style></head>
<body>
<h1><span class="verdict" id="verdict">{verdict}</span> {escape(title)}</h1>
<p id="summary">RTO (time to recover, outlined steps): <b>{result.rto_seconds:.2f}s</b>;
{len(result.steps)} steps in {result.seconds:.2f}s; {_size(recovered)} recovered.</p>
{timeline_svg(result, recovery)}
<table><tr><th>step</th><th>result</th><th>seconds</th><th>bytes</th><th>detail</th></tr>
{rows}
</table>
{_failed_list(failed)}
</body></html>
"""


def write_report(
    path: Path,
    result: ReportResult,
    title: str,
    recovery: Collection[str] = (),
    failed: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the page to `path` whole (a temp file renamed over it); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(render_report(result, title, recovery, failed), encoding="utf-8")
    os.replace(tmp, path)
    return path
