"""What an idle fleet costs: per resync and per cluster, with nothing changing in git or clusters.

The hub converges N clusters on the app, the watcher is closed (its requests must not count), and
then two windows are measured:
1. **hub running**, `--window` seconds (several resync intervals): a snapshot before and after of
   every apiserver's ``apiserver_request_total`` (:mod:`bench.apicount`), of the hub's own
   ``/metrics`` (renders, fetches, ls-remotes), of the git server's request log, and of the hub
   process's CPU seconds;
2. **hub stopped** (SIGSTOP), `--background-window` seconds: the same apiserver snapshots, which
   count only the kit's own components (controller-manager, scheduler, kwok).
Hub requests = window 1 - window 2 scaled to the same length. Writes are counted on the app's own
resources in window 1 alone (no subtraction needed: nothing else writes there).

That difference is noisy on a loaded machine (the kit's discovery requests come at a rate the
load changes), so two figures need no subtraction: reads of the app's resources, and requests on
any resource but leases (at idle the kit's components touch no other resource, and the hub,
unsharded, no lease). The hub's liveness probe (``GET /readyz`` after 3 s with no answer) is
counted apart, per minute: it runs by the clock, not per resync.

    python -m bench.noop_cost --clusters 8 --objects 50 --resync-interval 20 --window 60

Writes ``bench/results/noop_cost.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench import apicount, figures
from bench.hubproc import HubProcess, metric_sum
from bench.rig import Rig, add_rig_arguments, ensure_namespaces, fleet_yaml
from bench.watcher import Watcher

__all__ = ["main", "measure_idle"]

NS = "bench-noop"
KIT_RESOURCES = frozenset({"leases"})  # the kit renews its leader and node leases; the hub none


async def _scrape_all(kubeconfigs: dict[str, Path]) -> dict[str, apicount.Snapshot]:
    out: dict[str, apicount.Snapshot] = {}

    async def one(name: str, path: Path) -> None:
        out[name] = await apicount.scrape(path)

    async with anyio.create_task_group() as group:
        for name, path in kubeconfigs.items():
            group.start_soon(one, name, path)
    return out


async def measure_idle(
    rig: Rig, hub: HubProcess, *, window: float, background: float, resync: float, poll: float
) -> dict[str, Any]:
    """The two windows over a converged, running hub; the figures of the docstring."""
    servers = rig.kubeconfigs
    api0, hub0 = await _scrape_all(servers), await hub.metrics()
    git0, cpu0, t0 = rig.git_requests, hub.cpu_seconds(), time.monotonic()
    refs0 = rig.git_ref_listings
    fetch0 = rig.git_fetches
    await anyio.sleep(window)
    api1, hub1 = await _scrape_all(servers), await hub.metrics()
    elapsed = time.monotonic() - t0
    cpu = hub.cpu_seconds() - cpu0
    git_requests, git_fetches = rig.git_requests - git0, rig.git_fetches - fetch0
    git_listings = rig.git_ref_listings - refs0
    rss = hub.rss_mib()
    hub.suspend()
    try:
        bg0 = await _scrape_all(servers)
        t1 = time.monotonic()
        await anyio.sleep(background)
        bg1 = await _scrape_all(servers)
        bg_elapsed = time.monotonic() - t1
    finally:
        hub.resume()
    resyncs = elapsed / resync
    polls = elapsed / poll
    per_cluster: dict[str, Any] = {}
    for name in servers:
        running = apicount.delta(api0[name], api1[name])
        quiet = apicount.delta(bg0[name], bg1[name])
        scale = elapsed / bg_elapsed
        net = running.total - quiet.total * scale
        net_app_reads = running.app_reads - quiet.app_reads * scale
        probes = running.probes - quiet.probes * scale
        watches = running.watches - quiet.watches * scale
        per_cluster[name] = {
            "requests_per_resync": net / resyncs,
            "app_reads_per_resync": net_app_reads / resyncs,
            "probes_per_minute": probes / elapsed * 60,
            "watch_renewals": watches,
            "requests_per_resync_besides_probes_and_watches": (net - probes - watches) / resyncs,
            "resource_requests_per_resync": running.resource_requests(besides=KIT_RESOURCES)
            / resyncs,
            "app_writes": running.app_writes,
            "running_by_verb": running.by_verb(),
            "background_by_verb": quiet.by_verb(),
        }

    def hub_delta(name: str, **labels: str) -> float:
        return metric_sum(hub1, name, **labels) - metric_sum(hub0, name, **labels)

    def mean(key: str) -> float:
        return float(sum(c[key] for c in per_cluster.values())) / len(per_cluster)

    return {
        "window_s": elapsed,
        "background_window_s": bg_elapsed,
        "resync_interval_s": resync,
        "poll_interval_s": poll,
        "resyncs_in_window": resyncs,
        "per_cluster": per_cluster,
        "writes_total": sum(c["app_writes"] for c in per_cluster.values()),
        "requests_per_resync_per_cluster": mean("requests_per_resync"),
        "app_reads_per_resync_per_cluster": mean("app_reads_per_resync"),
        "resource_requests_per_resync_per_cluster": mean("resource_requests_per_resync"),
        "probes_per_minute_per_cluster": mean("probes_per_minute"),
        "watch_renewals_per_cluster": mean("watch_renewals"),
        "requests_per_resync_per_cluster_besides_probes_and_watches": mean(
            "requests_per_resync_besides_probes_and_watches"
        ),
        "reconciles": hub_delta("fleet_reconcile_duration_seconds_count"),
        "reconciles_noop": hub_delta("fleet_reconcile_duration_seconds_count", result="noop"),
        "renders": hub_delta("fleet_renders_total", result="render"),
        "render_cache_hits": hub_delta("fleet_renders_total", result="hit"),
        "hub_fetches": hub_delta("fleet_git_requests_total", op="fetch"),
        "hub_ls_remotes": hub_delta("fleet_git_requests_total", op="ls-remote"),
        "hub_api_requests": hub_delta("fleet_api_requests_total"),
        "git_server_requests": git_requests,
        "git_server_fetches": git_fetches,
        "git_ref_listings": git_listings,
        "git_requests_per_repo_per_interval": git_listings / polls,
        "git_http_requests_per_repo_per_interval": git_requests / polls,
        "hub_cpu_s": cpu,
        "hub_cpu_s_per_resync_per_cluster": cpu / resyncs / len(servers),
        "hub_cpu_pct_of_core": cpu / elapsed * 100,
        "hub_rss_mib": rss,
    }


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    with Rig(
        root, count=args.clusters, objects=args.objects, provider_name=args.provider,
        clusters_from=args.clusters_from,
    ) as rig:  # fmt: skip
        names = sorted(rig.kubeconfigs)
        await ensure_namespaces(rig.kubeconfigs, [NS])
        hub = HubProcess(
            root / "hub", poll_interval=args.poll_interval, resync_interval=args.resync_interval
        )
        (root / "hub").mkdir(parents=True, exist_ok=True)
        hub.config.write_text(fleet_yaml(rig.repo_url, namespace=NS))
        rig.drop_clusters(hub.clusters, names)
        with hub:
            async with Watcher(rig.kubeconfigs) as watcher:
                await watcher.wait([(n, NS) for n in names], "value:v0", limit=300)
            await anyio.sleep(args.settle)
            result = await measure_idle(
                rig, hub, window=args.window, background=args.background_window,
                resync=args.resync_interval, poll=args.poll_interval,
            )  # fmt: skip
    result["clusters"] = len(names)
    result["objects"] = args.objects
    return result


def print_table(result: dict[str, Any]) -> None:
    rows = [
        ["API requests per resync per cluster (apiserver, net of the kit's background)",
         result["requests_per_resync_per_cluster"]],
        ["  of which the resync's own (all but liveness probes and watch renewals)",
         result["requests_per_resync_per_cluster_besides_probes_and_watches"]],
        ["  reads of the app's resources per resync per cluster (no subtraction)",
         result["app_reads_per_resync_per_cluster"]],
        ["  requests on any resource but leases per resync per cluster (no subtraction)",
         result["resource_requests_per_resync_per_cluster"]],
        ["liveness probes (GET /readyz) per minute per cluster, whatever the resync",
         result["probes_per_minute_per_cluster"]],
        ["watch renewals per cluster in the window", result["watch_renewals_per_cluster"]],
        ["resyncs run (hub: reconciles in the window, all clusters / of which no-op)",
         f"{result['reconciles']:.0f} / {result['reconciles_noop']:.0f}"],
        ["writes to the app's resources (all clusters)", result["writes_total"]],
        ["renders", result["renders"]],
        ["fetches (hub / git server)",
         f"{result['hub_fetches']:.0f} / {result['git_server_fetches']}"],
        ["git requests (ref listings) per repo per poll interval (git server)",
         result["git_requests_per_repo_per_interval"]],
        ["  of which HTTP requests (smart HTTP: 2 per listing)",
         result["git_http_requests_per_repo_per_interval"]],
        ["hub CPU s per resync per cluster", result["hub_cpu_s_per_resync_per_cluster"]],
        ["hub CPU, % of one core", result["hub_cpu_pct_of_core"]],
        ["hub RSS MiB", result["hub_rss_mib"]],
    ]  # fmt: skip
    print(figures.table(["idle, per resync", "value"], rows))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rig_arguments(p)
    p.add_argument("--clusters", type=int, default=8)
    p.add_argument("--objects", type=int, default=50)
    p.add_argument("--poll-interval", type=float, default=5.0)
    p.add_argument("--resync-interval", type=float, default=20.0)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--background-window", type=float, default=30.0)
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--out", type=Path, default=Path("bench/results/noop_cost.json"))
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-noop-") as tmp:
        result = anyio.run(run, args, Path(tmp), backend="asyncio")
    print_table(result)
    figures.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
