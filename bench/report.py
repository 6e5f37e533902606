"""results.json -> results.md (one table per scenario) and chart.png (time against N)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from .scenarios import FLOOR, OURS


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ops(rpo: dict[str, float]) -> str:
    if not rpo:
        return "–"
    return ", ".join(f"{op} {v:g}" for op, v in sorted(rpo.items(), key=lambda kv: -kv[1]) if v >= 0.0005)


def _change_rows(results: dict[str, Any], pairs: list[tuple[str, str, str]]) -> list[str]:
    """Table rows for each (name shown, before tool, after tool): both as multiples of the floor of the
    same rounds, and the change between them."""
    rows = []
    for sc in results["scenarios"]:
        t = sc["tools"]
        floor = (t.get(FLOOR) or {}).get("median_s")
        for shown, before_tool, after_tool in pairs:
            before = (t.get(before_tool) or {}).get("median_s")
            after = (t.get(after_tool) or {}).get("median_s")
            if floor and before and after:
                r_before, r_after = before / floor, after / floor
                rows.append(
                    f"| {sc['server']}: {sc['scenario']} | {shown} | {r_before:.3f} | {r_after:.3f} | "
                    f"{(r_after / r_before - 1) * 100:+.1f} % |"
                )
    return rows


def against_baseline(results: dict[str, Any]) -> list[str]:
    """`--baseline REV`: ours and each baseline as a ratio to the boto3 floor timed in the same rounds."""
    labels = results["meta"].get("baselines") or []
    rows = _change_rows(results, [(label, label, OURS) for label in labels])
    if not rows:
        return []
    head = ["", "## Against a baseline revision, as multiples of the boto3 floor (same rounds)", ""]
    head += ["| scenario | baseline | baseline/floor | ours/floor | change |", "|---|---|---:|---:|---:|"]
    return head + rows + between_baselines(results)


def between_baselines(results: dict[str, Any]) -> list[str]:
    """The first `--baseline` against each later one: two revisions installed the same way.

    "Ours" runs from the working tree's venv (an editable install beside the
    test tools), so a start-up it pays that the installed baseline does not
    (the editable finder, PyYAML's C loader) is the venv's, not the code's.
    `--baseline=OLD --baseline=HEAD` compares the code alone.
    """
    labels = results["meta"].get("baselines") or []
    if len(labels) < 2:
        return []
    first = labels[0]
    rows = _change_rows(results, [(label, first, label) for label in labels[1:]])
    if not rows:
        return []
    head = ["", f"## {first} against later baselines, all installed the same way (multiples of the floor)", ""]
    head += [f"| scenario | revision | {first}/floor | revision/floor | change |", "|---|---|---:|---:|---:|"]
    return head + rows


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# dr-tasks bench results",
        "",
        f"Command: `{meta['command']}`  ",
        f"When: {meta['started']} · machine: {meta['machine']} · runs: {meta['runs']} (median; plus one counted run "
        "through the proxy when runs > 1)",
        "",
        "Peers: " + ", ".join(f"{k} = {v}" for k, v in meta["peers"].items() if k != "skipped" and v),
    ]
    if meta["peers"].get("skipped"):
        lines.append("Skipped: " + "; ".join(f"{k}: {v}" for k, v in meta["peers"]["skipped"].items()))
    if results.get("ceilings"):
        lines += [
            "",
            "Server ceilings (trivial requests/s): "
            + ", ".join(
                f"{c['server']} {c['requests_per_s']:.0f}/s (busy {c['server_busy_pct']:.0f}%)"
                for c in results["ceilings"]
            ),
        ]
    for sc in results["scenarios"]:
        lat = f", +{sc['latency_ms']} ms/request" if sc.get("latency_ms") else ""
        rate = "MiB/s" if sc.get("bytes") else "objects/s"
        note = sc.get("note", "")
        busy = [t["proxy_busy_pct"] for t in sc["tools"].values() if t.get("proxy_busy_pct") is not None]
        if sc.get("latency_ms") and busy:
            # The slowing proxy must not be what limits anyone (bench/README.md, "Is the proxy the bottleneck?").
            note += f"; the latency proxies were {min(busy):.0f}–{max(busy):.0f} % busy (of one core)"
        lines += [
            "",
            f"## {sc['server']}: {sc['scenario']} — {sc['objects']} objects{lat}",
            "",
            note,
            "",
            f"| tool | median s | {rate} | ours/theirs | requests/object (by operation) | server busy % "
            "| client CPU s | peak RSS MiB | correct |",
            "|---|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for name, t in sc["tools"].items():
            correct = "OK" if t["correct"] else "**WRONG**: " + _why(t["verdicts"])
            label = f"**{name}**" if t["kind"] == "ours" else name
            total = _fmt(t.get("requests_total_per_object"), 3)
            mib = t.get("mib_per_s")
            speed = _fmt(mib, 0 if (mib or 0) >= 10 else 3) if sc.get("bytes") else _fmt(t["objects_per_s"], 0)
            lines.append(
                f"| {label} | {_fmt(t['median_s'])} | {speed} | "
                f"{_fmt(t['ours_over_theirs'])} | {total}: {_ops(t['requests_per_object'])} | "
                f"{_fmt(t['server_busy_pct'], 0)} | {_fmt(t['client_cpu_s'])} | {_fmt(t['peak_rss_mib'], 0)} | "
                f"{correct} |"
            )
    lines += against_baseline(results)
    lines += rss_against_size(results)
    if results.get("scaling"):
        ns = sorted({p["n"] for p in results["scaling"]})
        seconds = _by_key(results["scaling"], "median_s")
        lines += ["", "## Time against N (chart.png)", ""]
        lines += _per_n_table(
            "Median seconds at each N, then the cost of each extra object between two N (ms/object): "
            "a straight line has the same figure in every segment.",
            ns,
            seconds,
        )
        # The machine-independent half of "linear": the client's own CPU (user time; the kernel's
        # time for creating files varies 2x run to run on a shared VM) at each N, and per extra object.
        cpu = _by_key([p for p in results["scaling"] if p.get("client_user_s") is not None], "client_user_s")
        if cpu:
            lines.append("")
            lines += _per_n_table(
                "Client user CPU seconds (median run) at each N, then ms of user CPU per extra object:", ns, cpu
            )
        rss = _by_key([p for p in results["scaling"] if p.get("peak_rss_mib") is not None], "peak_rss_mib")
        if rss:
            lines.append("")
            lines += _per_n_table(
                "Peak RSS MiB (largest timed run) at each N, then MiB per 1,000 extra objects (bounded: about 0):",
                ns,
                rss,
                unit="MiB/1000 objects",
            )
    return "\n".join(lines) + "\n"


def _by_key(points: list[dict[str, Any]], field: str) -> dict[tuple[str, str, str], dict[int, float]]:
    """(server, scenario, tool) -> {N: the point's `field`}."""
    series: dict[tuple[str, str, str], dict[int, float]] = {}
    for p in points:
        series.setdefault((p["server"], p["scenario"], p["tool"]), {})[p["n"]] = p[field]
    return series


def _per_n_table(
    caption: str, ns: list[int], series: dict[tuple[str, str, str], dict[int, float]], unit: str = "ms/object"
) -> list[str]:
    """A value at each N, then 1000 x its growth per extra object between neighbouring N (`unit`)."""
    segs = [f"{a}→{b}" for a, b in itertools.pairwise(ns)]
    lines = [
        caption,
        "",
        "| server | scenario | tool | "
        + " | ".join(f"N={n}" for n in ns)
        + "".join(f" | {unit} {s}" for s in segs)
        + " |",
        "|---|---|---|" + "---:|" * (len(ns) + len(segs)),
    ]
    for (srv, scn, tool), pts in series.items():
        slopes = [
            _fmt(1000 * (pts[b] - pts[a]) / (b - a)) if pts.get(a) is not None and pts.get(b) is not None else "–"
            for a, b in itertools.pairwise(ns)
        ]
        lines.append(
            f"| {srv} | {scn} | {tool} | "
            + " | ".join(_fmt(pts.get(n)) for n in ns)
            + "".join(f" | {x}" for x in slopes)
            + " |"
        )
    return lines


def rss_against_size(results: dict[str, Any]) -> list[str]:
    """Peak RSS of each tool for each object size of the one-object backups (flat = streaming)."""
    big = [sc for sc in results["scenarios"] if sc.get("bytes")]
    if not big:
        return []
    sizes = sorted({(sc["server"], sc["bytes"], sc["scenario"]) for sc in big}, key=lambda x: (x[0], x[1]))
    names = list(dict.fromkeys(name for sc in big for name in sc["tools"]))
    lines = [
        "",
        "## Peak RSS against object size (one-object backup, first run)",
        "",
        "| tool | " + " | ".join(f"{srv}: {scn.removeprefix('backup one ')} MiB" for srv, _b, scn in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for name in names:
        cells = []
        for srv, nbytes, _scn in sizes:
            sc = next(x for x in big if x["server"] == srv and x["bytes"] == nbytes)
            t = sc["tools"].get(name)
            ok = "" if t is None or t["correct"] else " (WRONG)"
            cells.append(_fmt(t["peak_rss_mib"], 0) + ok if t else "–")
        label = f"**{name}**" if name == "dr-tasks" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _why(verdicts: list[dict[str, Any]]) -> str:
    bad = next((v for v in verdicts if not v.get("ok")), {})
    if bad.get("error"):
        return str(bad["error"])[:160].replace("|", "/").replace("\n", " ")
    parts = [f"{k} {bad[k]}" for k in ("missing", "extra", "wrong_bytes") if bad.get(k)]
    ex = bad.get("examples") or []
    return ", ".join(parts) + (f" (e.g. {ex[0]})" if ex else "")


def chart(results: dict[str, Any], path: Path) -> bool:
    pts = results.get("scaling") or []
    if len({p["n"] for p in pts}) < 2:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = sorted({(p["server"], p["scenario"]) for p in pts})
    # One colour per tool across panels; dr-tasks black and thick.
    names = sorted({p["tool"] for p in pts} - {"dr-tasks"})
    colour = {name: f"C{i}" for i, name in enumerate(names)} | {"dr-tasks": "black"}
    # Time on the first row; peak RSS (the memory bound) on the second when the points carry it.
    rows = [("median_s", "seconds (median; whiskers: min-max of the timed runs)")]
    if any(p.get("peak_rss_mib") is not None for p in pts):
        rows.append(("peak_rss_mib", "peak RSS MiB (largest of the timed runs)"))
    fig, axes = plt.subplots(len(rows), len(groups), figsize=(6 * len(groups), 4.5 * len(rows)), squeeze=False)
    for r, (field, ylabel) in enumerate(rows):
        for ax, (srv, scn) in zip(axes[r], groups, strict=True):
            _panel(ax, pts, srv, scn, field, colour)
            ax.set_title(f"{srv}: {scn}")
            ax.set_xlabel("objects (N)")
            ax.set_ylabel(ylabel)
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _panel(ax: Any, pts: list[dict[str, Any]], srv: str, scn: str, field: str, colour: dict[str, str]) -> None:
    """One tool's line per tool for (server, scenario): `field` against N."""
    tools = sorted({p["tool"] for p in pts if (p["server"], p["scenario"]) == (srv, scn)})
    for tool in tools:
        series = sorted(
            (p["n"], p[field], p.get("seconds") or [])
            for p in pts
            if (p["server"], p["scenario"], p["tool"]) == (srv, scn, tool) and p.get(field) is not None
        )
        xs = [n for n, _, _ in series]
        ys = [m for _, m, _ in series]
        if field == "median_s":
            # Whiskers: the fastest and the slowest timed run (how much the machine moved the point).
            lo = [m - min(r) if r else 0.0 for _, m, r in series]
            hi = [max(r) - m if r else 0.0 for _, m, r in series]
            yerr: Any = [lo, hi]
        else:
            yerr = None
        ax.errorbar(
            xs,
            ys,
            yerr=yerr,
            marker="o",
            capsize=3,
            label=tool,
            color=colour[tool],
            linewidth=2.5 if tool == "dr-tasks" else 1.2,
        )


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.md").write_text(markdown(results))
    if chart(results, out / "chart.png"):
        paths.append(out / "chart.png")
    return paths
