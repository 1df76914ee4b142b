"""Commits under throttling: one cluster behind a proxy answering a share of requests 429.

Starts `--clusters` kit clusters (default 3), puts :class:`bench.throttle_proxy.ThrottleProxy`
(HTTPS, its own CA, 429 with ``Retry-After: 1``) in front of the first one, and runs the hub
(:class:`bench.hubproc.HubProcess`) on all of them, the first through the proxy. Once the app has
converged everywhere (no 429s yet), for each `--shares` value it makes `--commits` commits, each
pushed by webhook, and records per commit the time from the webhook to the commit's ConfigMap
value served by each cluster (read by an independent watcher straight from each apiserver, not
through the proxy), and how many 429s the proxy answered meanwhile. The app is a Namespace and
`--objects` ConfigMaps, the marker ConfigMap last.

    python -m bench.throttle --clusters 3 --shares 0.3 0.8 --commits 5 [--repeats 2]

Writes ``bench/results/throttle.json`` and prints a Markdown table per share and the medians;
``--repeats`` runs the whole measure again on fresh clusters and a fresh hub (the rows carry
their run), and the medians are taken over every commit of every run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench import figures
from bench.hubproc import HubProcess, metric_sum
from bench.rig import fleet_yaml
from bench.throttle_proxy import ThrottleProxy
from bench.watcher import Watcher
from fleet.controlplane import LocalProvider
from tests.sources.gitkit import GitHttpServer, Remote

__all__ = ["main", "measure"]

NS = "bench-throttle"


def _app(value: str, objects: int) -> dict[str, str]:
    files = {"app/ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n"}
    for index in range(objects - 1):
        files[f"app/cm-{index}.yaml"] = (
            "apiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: extra-{index}, namespace: {NS}}}\n"
            f"data: {{value: '{value}'}}\n"
        )
    files["app/settings.yaml"] = (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata: {{name: settings, namespace: {NS}}}\n"
        f"data: {{value: '{value}'}}\n"
    )
    return files


async def measure(
    root: Path, *, clusters: int, shares: list[float], commits: int, objects: int, limit: float
) -> dict[str, Any]:
    names = [f"thr-{i}" for i in range(1, clusters + 1)]
    rows: list[dict[str, Any]] = []
    (root / "remotes").mkdir(parents=True)
    (root / "hub" / "clusters").mkdir(parents=True)
    with (
        LocalProvider(kubeconfig_dir=root / "kit", progress=lambda _: None) as kit,
        GitHttpServer(root / "remotes") as git,
    ):
        running = kit.up(names)
        throttled = running[0].name
        remote = Remote(root / "remotes", "config")
        url = git.url("config.git")
        remote.commit(_app("v0", objects))
        hub = HubProcess(root / "hub", poll_interval=3600, resync_interval=3600, workers=8)
        hub.config.write_text(fleet_yaml(url, namespace=NS))
        direct = {c.name: c.kubeconfig for c in running}
        async with (
            ThrottleProxy(running[0].kubeconfig, share=0.0, retry_after=1.0) as proxy,
            Watcher(direct) as watcher,
        ):
            proxy.kubeconfig(hub.clusters / f"{throttled}.yaml")
            for cluster in running[1:]:
                (hub.clusters / f"{cluster.name}.yaml").write_bytes(cluster.kubeconfig.read_bytes())
            with hub:
                slots = [(name, NS) for name in names]
                await watcher.wait(slots, "value:v0", limit=120)
                for share in shares:
                    proxy.share = share
                    for index in range(commits):
                        value = f"s{int(share * 100)}-{index}"
                        remote.commit(_app(value, objects), message=value)
                        before, kinds_before = proxy.throttled, proxy.by_kind.copy()
                        pushed = time.time()
                        assert await hub.webhook(url) in (200, 202)
                        marker = f"value:{value}"
                        with contextlib.suppress(TimeoutError):
                            await watcher.wait(slots, marker, limit=limit)
                        seen = {s: watcher.seen.get((*s, marker)) for s in slots}
                        row = {
                            "share": share,
                            "commit": index + 1,
                            "throttled_s": _after(seen.get((throttled, NS)), pushed),
                            "others_max_s": max(
                                (_after(seen.get((n, NS)), pushed) for n in names[1:]),
                                default=0.0,
                            ),
                            "proxy_429s": proxy.throttled - before,
                            "requests": dict((proxy.by_kind - kinds_before).most_common(6)),
                        }
                        rows.append(row)
                        print(f"  {row}", flush=True)
                        await anyio.sleep(1.0)
                metrics = await hub.metrics()
                alive = hub.alive()
        hub_429s = metric_sum(metrics, "fleet_api_requests_total", cluster=throttled, code="429")
    return {
        "clusters": clusters,
        "objects": objects,
        "retry_after_s": 1.0,
        "rows": rows,
        "proxy_requests": proxy.requests,
        "proxy_429s": proxy.throttled,
        "hub_counted_429s": hub_429s,
        "hub_alive": alive,
        "limit_s": limit,
    }


def _after(seen: float | None, pushed: float) -> float:
    return round(seen - pushed, 3) if seen is not None else float("inf")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.3, 0.8])
    parser.add_argument("--commits", type=int, default=5)
    parser.add_argument("--objects", type=int, default=5)
    parser.add_argument("--limit", type=float, default=60.0, help="give up on a commit after")
    parser.add_argument("--repeats", type=int, default=1, help="whole runs, medians over all")
    parser.add_argument("--out", type=Path, default=Path("bench/results/throttle.json"))
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    for repeat in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="bench-throttle-") as tmp:
            run = anyio.run(
                lambda: measure(
                    Path(tmp),
                    clusters=args.clusters,
                    shares=args.shares,
                    commits=args.commits,
                    objects=args.objects,
                    limit=args.limit,
                )
            )
        for row in run["rows"]:
            row["run"] = repeat
        runs.append(run)
    results = {
        **runs[0],
        "rows": [row for run in runs for row in run["rows"]],
        "repeats": args.repeats,
        "proxy_requests": sum(r["proxy_requests"] for r in runs),
        "proxy_429s": sum(r["proxy_429s"] for r in runs),
        "hub_counted_429s": sum(r["hub_counted_429s"] for r in runs),
        "hub_alive": all(r["hub_alive"] for r in runs),
    }
    rows = results["rows"]
    print()
    print(
        figures.table(
            ["run", "429 share", "commit", "throttled cluster s", "other clusters (max) s", "429s"],
            [
                [
                    r["run"],
                    f"{r['share']:.0%}",
                    r["commit"],
                    r["throttled_s"],
                    r["others_max_s"],
                    r["proxy_429s"],
                ]
                for r in rows
            ],
        )
    )
    print()
    medians = []
    for share in args.shares:
        group = [r for r in rows if r["share"] == share]
        medians.append(
            [
                f"{share:.0%}",
                statistics.median(r["throttled_s"] for r in group),
                statistics.median(r["others_max_s"] for r in group),
                sum(1 for r in group if r["throttled_s"] <= 10.0),
                len(group),
            ]
        )
    print(
        figures.table(
            ["429 share", "median throttled s", "median others s", "within 10 s", "commits"],
            medians,
        )
    )
    results["medians"] = medians
    print(
        f"\nproxy: {results['proxy_requests']} requests, {results['proxy_429s']} answered 429; "
        f"hub counted {results['hub_counted_429s']:.0f}; hub alive: {results['hub_alive']}"
    )
    figures.write_results(args.out, results)


if __name__ == "__main__":
    main()
