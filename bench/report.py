"""results.json -> results.md (one table per scenario) and chart.png (time against N)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
        lines += [
            "",
            f"## {sc['server']}: {sc['scenario']} — {sc['objects']} objects{lat}",
            "",
            f"{sc.get('note', '')}",
            "",
            "| tool | median s | objects/s | ours/theirs | requests/object (by operation) | server busy % "
            "| client CPU s | peak RSS MiB | correct |",
            "|---|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for name, t in sc["tools"].items():
            correct = "OK" if t["correct"] else "**WRONG**: " + _why(t["verdicts"])
            label = f"**{name}**" if t["kind"] == "ours" else name
            total = _fmt(t.get("requests_total_per_object"), 3)
            lines.append(
                f"| {label} | {_fmt(t['median_s'])} | {_fmt(t['objects_per_s'], 0)} | "
                f"{_fmt(t['ours_over_theirs'])} | {total}: {_ops(t['requests_per_object'])} | "
                f"{_fmt(t['server_busy_pct'], 0)} | {_fmt(t['client_cpu_s'])} | {_fmt(t['peak_rss_mib'], 0)} | "
                f"{correct} |"
            )
    if results.get("scaling"):
        lines += [
            "",
            "## Time against N (chart.png)",
            "",
            "| server | scenario | tool | "
            + " | ".join(f"N={n}" for n in sorted({p["n"] for p in results["scaling"]}))
            + " |",
        ]
        ns = sorted({p["n"] for p in results["scaling"]})
        lines.append("|---|---|---|" + "---:|" * len(ns))
        series: dict[tuple[str, str, str], dict[int, float]] = {}
        for p in results["scaling"]:
            series.setdefault((p["server"], p["scenario"], p["tool"]), {})[p["n"]] = p["median_s"]
        for (srv, scn, tool), pts in series.items():
            lines.append(f"| {srv} | {scn} | {tool} | " + " | ".join(_fmt(pts.get(n)) for n in ns) + " |")
    return "\n".join(lines) + "\n"


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
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), squeeze=False)
    for ax, (srv, scn) in zip(axes[0], groups, strict=True):
        tools = sorted({p["tool"] for p in pts if (p["server"], p["scenario"]) == (srv, scn)})
        for tool in tools:
            xs = sorted(
                (p["n"], p["median_s"]) for p in pts if (p["server"], p["scenario"], p["tool"]) == (srv, scn, tool)
            )
            xs = [(n, s) for n, s in xs if s is not None]
            ax.plot(
                [n for n, _ in xs],
                [s for _, s in xs],
                marker="o",
                label=tool,
                linewidth=2.5 if tool == "dr-tasks" else 1.2,
            )
        ax.set_title(f"{srv}: {scn}")
        ax.set_xlabel("objects (N)")
        ax.set_ylabel("median seconds")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.md").write_text(markdown(results))
    if chart(results, out / "chart.png"):
        paths.append(out / "chart.png")
    return paths
