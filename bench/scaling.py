"""Sync latency and hub cost against the number of real clusters: N = 1, 2, 4, 8 (16).

The largest N is started once; for each N in `--counts` a fresh hub (its own process, state and
cache) gets the first N kubeconfigs and its own namespace, converges, takes `--warmup` commits,
then `--commits` webhook commits timed as in :mod:`bench.sync_latency`, each followed by the
apply floor on the same N clusters. Reported per N: commit-to-converged percentiles (over every
(commit, cluster)), the all-clusters-converged median, fleet ÷ floor, the hub's CPU seconds per
commit and its resident memory once idle.

    python -m bench.scaling --counts 1 2 4 8 --objects 50 --commits 15

Writes ``bench/results/scaling.json`` and ``scaling.png``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import anyio

from bench import figures
from bench.floor import Floor, render
from bench.hubproc import HubProcess
from bench.rig import Rig, add_rig_arguments, ensure_namespaces, fleet_yaml
from bench.sync_latency import SyncRun
from bench.watcher import Watcher

__all__ = ["main"]


async def one_count(
    rig: Rig, watcher: Watcher, root: Path, *, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    names = sorted(rig.kubeconfigs)[:count]
    ns, ns_floor = f"bench-n{count}", f"bench-floor-n{count}"
    subset = {n: rig.kubeconfigs[n] for n in names}
    await ensure_namespaces(subset, [ns, ns_floor])
    hub = HubProcess(root / f"hub-{count}", poll_interval=300, resync_interval=300)
    hub.root.mkdir(parents=True, exist_ok=True)
    hub.config.write_text(fleet_yaml(rig.repo_url, namespace=ns))
    rig.drop_clusters(hub.clusters, names)
    assert rig.workload is not None
    with hub:
        sync = SyncRun(rig, hub, watcher, clusters=names, limit=args.limit)
        head = rig.workload.initial_marker() if rig.workload.index == 0 else None
        marker = head.text if head else _current_marker(rig)
        await watcher.wait(sync.slots(ns), marker, limit=300)
        async with Floor(subset, namespace=ns_floor) as floor:
            await floor.apply(render(rig.workload.app))
            for _ in range(args.warmup):
                await sync.fleet_round(webhook=True, namespace=ns)
            sync.rounds.clear()
            cpu = 0.0
            for _ in range(args.commits):
                before = hub.cpu_seconds()
                r = await sync.fleet_round(webhook=True, namespace=ns)
                cpu += hub.cpu_seconds() - before
                objects = render(rig.workload.app)
                await sync.reference_round(
                    "floor", lambda o=objects: floor.apply(o), ns_floor, r.marker
                )
        await anyio.sleep(args.settle)
        rss = hub.rss_mib()
    fleet_rounds, floor_rounds = sync.of("webhook"), sync.of("floor")
    ratios = [f.converged / g.converged for f, g in zip(fleet_rounds, floor_rounds, strict=True)]
    result = {
        "clusters": count,
        "latency": figures.summary([v for r in fleet_rounds for v in r.latency.values()]),
        "all_converged_p50": statistics.median(r.converged for r in fleet_rounds),
        "floor_all_converged_p50": statistics.median(r.converged for r in floor_rounds),
        "fleet_over_floor": statistics.median(ratios),
        "hub_cpu_s_per_commit": cpu / args.commits,
        "hub_rss_mib_idle": rss,
    }
    print(f"  N={count}: {result}", flush=True)
    return result


def _current_marker(rig: Rig) -> str:
    assert rig.workload is not None
    index = rig.workload.index
    return f"image:v{index}" if index % 2 == 0 else f"value:v{index}"


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    biggest = max(args.counts)
    with Rig(
        root, count=biggest, objects=args.objects, provider_name=args.provider,
        clusters_from=args.clusters_from,
    ) as rig:  # fmt: skip
        async with Watcher(rig.kubeconfigs) as watcher:
            rows = [
                await one_count(rig, watcher, root, count=count, args=args)
                for count in sorted(args.counts)
            ]
    return {"objects": args.objects, "commits": args.commits, "rows": rows}


def print_table(result: dict[str, Any]) -> None:
    rows = [
        [r["clusters"], r["latency"]["p50"], r["latency"]["p90"], r["latency"]["p99"],
         r["all_converged_p50"], r["floor_all_converged_p50"], r["fleet_over_floor"],
         r["hub_cpu_s_per_commit"], r["hub_rss_mib_idle"]]
        for r in result["rows"]
    ]  # fmt: skip
    headers = ["clusters", "p50 s", "p90 s", "p99 s", "all conv. p50 s", "floor p50 s",
               "fleet ÷ floor", "hub CPU s/commit", "hub RSS MiB"]  # fmt: skip
    print(figures.table(headers, rows))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rig_arguments(p)
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--objects", type=int, default=50)
    p.add_argument("--commits", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--limit", type=float, default=120.0)
    p.add_argument("--out", type=Path, default=Path("bench/results/scaling.json"))
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-scaling-") as tmp:
        result = anyio.run(run, args, Path(tmp), backend="asyncio")
    print_table(result)
    figures.write_results(args.out, result)
    rows = result["rows"]
    figures.plot_scaling(
        args.out.with_suffix(".png"),
        [r["clusters"] for r in rows],
        {
            "fleet p50": [r["latency"]["p50"] for r in rows],
            "fleet p99": [r["latency"]["p99"] for r in rows],
            "floor, all converged p50": [r["floor_all_converged_p50"] for r in rows],
        },
        xlabel="real clusters",
        ylabel="commit to converged, s",
        title=f"scaling: {args.objects} objects, {args.commits} commits per N",
        right={"hub RSS MiB": [r["hub_rss_mib_idle"] for r in rows]},
        right_label="hub RSS, MiB",
    )
    return result


if __name__ == "__main__":
    main()
