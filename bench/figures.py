"""Summaries, tables, the results file and the plots shared by the benches.

Percentiles are by linear interpolation between order statistics (``statistics.quantiles``'s
"inclusive" method), so p99 of 30 samples lies between the two largest: with K samples a tail
percentile is only as good as K allows, and the tables say K. Plots use matplotlib's Agg backend
(no display); a missing matplotlib skips the plot, never the results.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

__all__ = ["machine", "plot_cdf", "plot_scaling", "summary", "table", "write_results"]


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p90, p99, max (and mean) of `values` in seconds; empty gives n=0 only."""
    if not values:
        return {"n": 0}
    data = sorted(values)
    if len(data) == 1:
        p50 = p90 = p99 = data[0]
    else:
        cuts = statistics.quantiles(data, n=100, method="inclusive")
        p50, p90, p99 = cuts[49], cuts[89], cuts[98]
    return {
        "n": len(data),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": data[-1],
        "mean": statistics.fmean(data),
    }


def machine() -> dict[str, Any]:
    load = psutil.getloadavg()
    try:
        kernel = subprocess.run(
            ["uname", "-r"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        kernel = ""
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpus": psutil.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": kernel,
        "load_at_end": [round(x, 2) for x in load],
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (the house format of bench/README.md); numbers right-aligned."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    align = ["---" if i == 0 else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "machine": machine()}, indent=2) + "\n")
    print(f"written: {path}", flush=True)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    return plt


def plot_cdf(path: Path, series: Mapping[str, Sequence[float]], *, title: str) -> None:
    """Empirical CDFs of latencies, one line per series (log-scaled seconds)."""
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, values in series.items():
        if not values:
            continue
        data = sorted(values)
        ys = [(i + 1) / len(data) for i in range(len(data))]
        ax.step(data, ys, where="post", label=f"{label} (n={len(data)})")
    ax.set_xscale("log")
    ax.set_xlabel("commit to converged on the cluster, seconds (log)")
    ax.set_ylabel("share of (commit, cluster)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"written: {path}", flush=True)


def plot_scaling(
    path: Path,
    xs: Sequence[float],
    lines: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    right: Mapping[str, Sequence[float]] | None = None,
    right_label: str = "",
) -> None:
    """Lines against `xs` on the left axis, and optionally others on a right axis."""
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, ys in lines.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if right:
        ax2 = ax.twinx()
        for label, ys in right.items():
            ax2.plot(xs, ys, marker="s", linestyle="--", color="tab:red", label=label)
        ax2.set_ylabel(right_label)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"written: {path}", flush=True)
