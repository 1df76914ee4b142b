"""Commit-to-converged on every cluster, with the apply floor and a naive baseline in the same run.

For each of `--commits` K commits (alternately a new image tag, through ``fleet.gitops``, and a new
ConfigMap value), timed from the start of ``git push``, then the signed webhook POST, until the
independent watcher (:mod:`bench.watcher`) sees the new value served by every cluster. Right after
each fleet round, on the same commit and clusters, in namespaces of their own: the **floor** (the
pre-rendered manifests applied by a minimal loop over fleet's own client) and the **baseline**
(per cluster in turn, ``git fetch`` + ``kubectl apply --server-side -k``), timed from their start
to the same watcher's sighting. Interleaving puts all three under the same machine noise.

Then `--poll-commits` commits with no webhook, which the hub finds by polling every
`--poll-interval` seconds; before each push the bench sleeps a random share of the interval, so
pushes land at a uniformly random phase of the poller.

    python -m bench.sync_latency --clusters 8 --objects 50 --commits 30

Writes ``bench/results/sync_latency.json`` and ``sync_latency.png`` (latency CDFs).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench import figures
from bench.floor import Baseline, Floor, render
from bench.hubproc import HubProcess, metric_sum
from bench.rig import Rig, add_rig_arguments, ensure_namespaces, fleet_yaml
from bench.watcher import Watcher

__all__ = ["Round", "SyncRun", "main", "run"]

NS_FLEET, NS_FLOOR, NS_BASELINE = "bench-fleet", "bench-floor", "bench-baseline"


@dataclass
class Round:
    index: int
    marker: str
    mode: str  # webhook, floor, baseline, poll
    latency: dict[str, float] = field(default_factory=dict)  # cluster -> seconds
    push_s: float = 0.0  # of which `git push` itself (fleet rounds)

    @property
    def converged(self) -> float:
        return max(self.latency.values())


class SyncRun:
    """The commit loop over a running rig, hub and watcher (also used by :mod:`bench.scaling`)."""

    def __init__(
        self, rig: Rig, hub: HubProcess, watcher: Watcher, *, clusters: list[str], limit: float
    ) -> None:
        self.rig, self.hub, self.watcher = rig, hub, watcher
        self.clusters = clusters
        self.limit = limit
        self.rounds: list[Round] = []

    def slots(self, namespace: str) -> list[tuple[str, str]]:
        return [(c, namespace) for c in self.clusters]

    async def fleet_round(self, *, webhook: bool, namespace: str = NS_FLEET) -> Round:
        workload = self.rig.workload
        assert workload is not None
        marker = workload.edit()
        workload.commit(f"bench: {marker.text}")
        started = await anyio.to_thread.run_sync(workload.push)
        pushed = time.time() - started
        if webhook:
            status = await self.hub.webhook(self.rig.repo_url)
            if status not in (200, 202):
                raise RuntimeError(f"webhook answered {status}")
        seen = await self.watcher.wait(self.slots(namespace), marker.text, limit=self.limit)
        result = Round(
            marker.index, marker.text, "webhook" if webhook else "poll",
            {c: t - started for (c, _), t in seen.items()}, pushed,
        )  # fmt: skip
        self.rounds.append(result)
        return result

    async def reference_round(self, mode: str, work: Any, namespace: str, marker: str) -> Round:
        started = time.time()
        await work()
        seen = await self.watcher.wait(self.slots(namespace), marker, limit=self.limit)
        result = Round(int(marker.split(":v")[1]), marker, mode)
        result.latency = {c: t - started for (c, _), t in seen.items()}
        self.rounds.append(result)
        return result

    def of(self, mode: str) -> list[Round]:
        return [r for r in self.rounds if r.mode == mode]


def report(run: SyncRun, *, cpu: dict[str, float]) -> dict[str, Any]:
    modes = ["webhook", "floor", "baseline", "poll"]
    out: dict[str, Any] = {"rounds": [asdict(r) for r in run.rounds], "cpu": cpu}
    for mode in modes:
        rounds = run.of(mode)
        out[mode] = {
            "overall": figures.summary([v for r in rounds for v in r.latency.values()]),
            "all_converged": figures.summary([r.converged for r in rounds]),
            "per_cluster": {
                c: figures.summary([r.latency[c] for r in rounds]) for c in run.clusters
            },
        }
    by_index = {(r.mode, r.index): r for r in run.rounds}
    ratios: dict[str, list[float]] = {"fleet_over_floor": [], "baseline_over_fleet": []}
    for r in run.of("webhook"):
        floor, base = by_index.get(("floor", r.index)), by_index.get(("baseline", r.index))
        if floor is not None:
            ratios["fleet_over_floor"].append(r.converged / floor.converged)
        if base is not None:
            ratios["baseline_over_fleet"].append(base.converged / r.converged)
    out["ratios"] = {k: statistics.median(v) if v else None for k, v in ratios.items()}
    pushes = [r.push_s for r in run.of("webhook")]
    out["git_push_s_median"] = statistics.median(pushes) if pushes else None
    return out


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    with Rig(
        root, count=args.clusters, objects=args.objects, provider_name=args.provider,
        clusters_from=args.clusters_from,
    ) as rig:  # fmt: skip
        names = sorted(rig.kubeconfigs)
        await ensure_namespaces(rig.kubeconfigs, [NS_FLEET, NS_FLOOR, NS_BASELINE])
        hub = HubProcess(
            root / "hub",
            poll_interval=args.poll_interval,
            resync_interval=args.resync_interval,
            profile=args.hub_profile.resolve() if args.hub_profile else None,
            log_level=args.hub_log_level,
        )
        (root / "hub").mkdir(parents=True, exist_ok=True)
        hub.config.write_text(fleet_yaml(rig.repo_url, namespace=NS_FLEET))
        rig.drop_clusters(hub.clusters, names)
        assert rig.workload is not None
        with hub:
            async with (
                Watcher(rig.kubeconfigs) as watcher,
                Floor(rig.kubeconfigs, namespace=NS_FLOOR) as floor,
            ):
                sync = SyncRun(rig, hub, watcher, clusters=names, limit=args.limit)
                first = rig.workload.initial_marker().text
                t0 = time.time()
                await watcher.wait(sync.slots(NS_FLEET), first, limit=300)
                first_sync = time.time() - t0
                baseline = None
                if not args.no_baseline:
                    baseline = Baseline(
                        rig.kubeconfigs, repo_url=rig.repo_url, root=root / "baseline",
                        namespace=NS_BASELINE,
                    )  # fmt: skip
                    await baseline.run()
                await floor.apply(render(rig.workload.app))
                for _ in range(args.warmup):
                    await sync.fleet_round(webhook=True)
                sync.rounds.clear()
                cpu0, wall0 = hub.cpu_seconds(), time.monotonic()
                requests0 = metric_sum(await hub.metrics(), "fleet_api_requests_total")
                fleet_cpu = 0.0
                for _ in range(args.commits):
                    before = hub.cpu_seconds()
                    r = await sync.fleet_round(webhook=True)
                    fleet_cpu += hub.cpu_seconds() - before
                    objects = render(rig.workload.app)
                    await sync.reference_round(
                        "floor", lambda o=objects: floor.apply(o), NS_FLOOR, r.marker
                    )
                    if baseline is not None:
                        await sync.reference_round("baseline", baseline.run, NS_BASELINE, r.marker)
                    print(f"  {_line(sync, r.index)}", flush=True)
                cpu = {
                    "hub_cpu_s_per_commit": fleet_cpu / max(1, args.commits),
                    "hub_cpu_s_whole_phase": hub.cpu_seconds() - cpu0,
                    "phase_wall_s": time.monotonic() - wall0,
                    "hub_rss_mib": hub.rss_mib(),
                    "hub_api_requests_per_commit_per_cluster": (
                        metric_sum(await hub.metrics(), "fleet_api_requests_total") - requests0
                    )
                    / max(1, args.commits)
                    / len(names),
                }
                for _ in range(args.poll_commits):
                    await anyio.sleep(random.uniform(0, args.poll_interval))
                    r = await sync.fleet_round(webhook=False)
                    print(f"  poll {r.marker}: {r.converged:.2f}s", flush=True)
                result = report(sync, cpu=cpu)
                result["first_sync_s"] = first_sync
        if args.hub_log_level != "WARNING":
            shutil.copyfile(hub.log, args.out.with_suffix(".hub.log"))
    result["config"] = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
    }
    return result


def _line(sync: SyncRun, index: int) -> str:
    parts = [f"{r.mode} {r.converged:.2f}s" for r in sync.rounds if r.index == index]
    return f"commit {index}: " + ", ".join(parts)


def print_tables(result: dict[str, Any]) -> None:
    rows = []
    for mode in ("webhook", "poll", "floor", "baseline"):
        s = result[mode]["overall"]
        if s.get("n"):
            rows.append([mode, s["n"], s["p50"], s["p90"], s["p99"], s["max"]])
    print(figures.table(["path", "n", "p50 s", "p90 s", "p99 s", "max s"], rows))
    rows = []
    for cluster, s in result["webhook"]["per_cluster"].items():
        rows.append([cluster, s["n"], s["p50"], s["p90"], s["p99"], s["max"]])
    print(figures.table(["cluster (webhook)", "n", "p50 s", "p90 s", "p99 s", "max s"], rows))
    print("ratios (median over commits):", result["ratios"])
    print("hub:", result["cpu"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rig_arguments(p)
    p.add_argument("--clusters", type=int, default=8)
    p.add_argument("--objects", type=int, default=50)
    p.add_argument("--commits", type=int, default=30)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--poll-commits", type=int, default=10)
    p.add_argument("--poll-interval", type=float, default=5.0)
    p.add_argument("--resync-interval", type=float, default=300.0)
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--hub-profile", type=Path, default=None, help="cProfile the hub into PATH")
    p.add_argument("--hub-log-level", default="WARNING", help="INFO keeps the hub's log too")
    p.add_argument("--limit", type=float, default=120.0, help="give up on a commit after this")
    p.add_argument("--out", type=Path, default=Path("bench/results/sync_latency.json"))
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-sync-") as tmp:
        result = anyio.run(run, args, Path(tmp), backend="asyncio")
    print_tables(result)
    figures.write_results(args.out, result)
    modes = ("webhook", "poll", "floor", "baseline")
    series = {
        m: [v for r in result["rounds"] if r["mode"] == m for v in r["latency"].values()]
        for m in modes
    }
    figures.plot_cdf(
        args.out.with_suffix(".png"),
        series,
        title=f"{args.clusters} clusters x {args.objects} objects, {args.commits} commits",
    )
    return result


if __name__ == "__main__":
    main()
