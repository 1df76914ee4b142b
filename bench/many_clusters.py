"""The hub's own cost per cluster entry: hundreds of entries sharing a few real apiservers.

`--servers` real clusters are started; for each level E of `--entries`, a fresh hub gets E
cluster entries, distinct kubeconfig files (copies, round-robin over the real apiservers; the
file stem is the entry's name). The app's path is ``tenants/{{ cluster.name }}``: each entry has
a kustomize overlay of its own (:func:`bench.workload.write_tenants`) putting a small app (a
Namespace, a ConfigMap, a Service) into a namespace of its own, ``t-<entry>``: a kustomization
per cluster name, hence one render per entry (the figures include E renders).

Two layouts (``--layout``). ``shared-app`` is the one above: one app ``web`` for every entry (each
entry has an inventory of its own: its id names the cluster entry). ``app-per-entry`` (the
default) gives each entry an app of its own (``w-<entry>``, ``destination.clusters.names:
[<entry>]``): the same per-entry objects and renders, 1,000 apps in the config instead of one.

Per level: time from hub start to every entry converged (seen by the independent watcher on the
real apiservers), hub RSS and CPU once idle (after `--settle`), then one commit that changes every
entry's ConfigMap, pushed with its webhook: commit-to-converged per entry, and the API requests
the apiservers counted from the push to the last entry converged, per entry, by verb and
resource (the kit's own components' few requests a second included), and the machine's CPU
seconds in that window by program (:mod:`bench.cpushare`: the hub, krender, the apiservers, etcd).

    python -m bench.many_clusters --servers 4 --entries 10 100 250 500 1000

``--kustomize krender`` (the default) hands the hub the batch renderer built in the kit's cache
(``FLEET_KRENDER``: the hub's own cache directory is a fresh one per level); ``--kustomize cli``
leaves it a ``kubectl kustomize`` process per render, for comparison.

``--floor`` then measures, per level and with the hub stopped, the same commit without a hub
(:mod:`bench.entry_floor`, a process of its own): each entry's changed ConfigMap applied by one
server-side apply, then again followed by a second apply of a record of it (fleet's inventory
write), as many entries at once as the hub's workers, watched by the same watcher. What the hub
takes beyond the second is its own cost; what the second takes is the machine's.

``--profile DIR`` samples the hub with py-spy from its start to every entry converged (so the
converge-all figure is taken with the sampler running), for one more idle window (after the idle
figures are taken) and from the push to the last entry converged: collapsed stacks per level in
DIR.

Writes ``bench/results/many_clusters.json`` and ``many_clusters.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from bench import apicount, cpushare, figures
from bench.hubproc import HubProcess
from bench.rig import Rig, add_rig_arguments, fleet_yaml
from bench.watcher import Watcher
from bench.workload import set_tenant_value, write_tenants
from fleet.controlplane.binaries import ensure_tool
from fleet.settings import default_cache_dir

__all__ = ["main"]


def _config(repo_url: str, names: list[str], *, layout: str) -> str:
    if layout == "shared-app":
        return fleet_yaml(repo_url, namespace="default", path="tenants/{{ cluster.name }}")
    apps = ["apps:"]
    for name in names:
        apps.append(
            f"  - name: w-{name}\n"
            f'    source: {{repoURL: "{repo_url}", targetRevision: main, path: tenants/{name}}}\n'
            f"    destination: {{namespace: default, clusters: {{names: [{name}]}}}}\n"
            "    syncPolicy: {prune: true, selfHeal: true}"
        )
    return "\n".join(apps) + "\n"


def entry_names(level: int) -> list[str]:
    return [f"l{level}-e{i:04d}" for i in range(1, level + 1)]


async def one_level(
    rig: Rig, watcher: Watcher, root: Path, *, level: int, value: int, args: argparse.Namespace
) -> dict[str, Any]:
    servers = sorted(rig.kubeconfigs)
    names = entry_names(level)
    server_of = {name: servers[i % len(servers)] for i, name in enumerate(names)}
    slots = [(server_of[n], f"t-{n}") for n in names]
    env = {}
    if args.kustomize == "krender":
        env["FLEET_KRENDER"] = str(ensure_tool("krender", cache_dir=default_cache_dir()))
    hub = HubProcess(
        root / f"hub-{level}",
        poll_interval=300,
        resync_interval=args.resync_interval,
        start_timeout=args.limit,
        env=env,
    )
    hub.root.mkdir(parents=True, exist_ok=True)
    hub.config.write_text(_config(rig.repo_url, names, layout=args.layout))
    hub.clusters.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = rig.kubeconfigs[server_of[name]]
        (hub.clusters / f"{name}.yaml").write_bytes(source.read_bytes())
    assert rig.remote is not None
    started = time.time()
    with hub:
        with _sampled(hub, args, f"start-{level}.txt"):
            seen = await watcher.wait(slots, f"value:v{value}", limit=args.limit)
        converge = max(seen.values()) - started
        await anyio.sleep(args.settle)
        cpu0, t0 = hub.cpu_seconds(), time.monotonic()
        await anyio.sleep(args.idle_window)
        idle_cpu = (hub.cpu_seconds() - cpu0) / (time.monotonic() - t0) * 100
        rss = hub.rss_mib()
        if args.profile is not None:  # after the idle figures, so the sampler is not in them
            with _sampled(hub, args, f"idle-{level}.txt"):
                await anyio.sleep(args.idle_window)
        marker = set_tenant_value(rig.remote.work, f"v{value + 1}")
        assert rig.workload is not None
        rig.workload.commit(f"bench: every tenant to {marker.text}")
        before = {server: await apicount.scrape(rig.kubeconfigs[server]) for server in servers}
        assert hub.proc is not None
        cpu_before = cpushare.snapshot(hub_pid=hub.proc.pid)
        with _sampled(hub, args, f"commit-{level}.txt"):
            pushed = await anyio.to_thread.run_sync(rig.workload.push)
            status = await hub.webhook(rig.repo_url)
            if status not in (200, 202):
                raise RuntimeError(f"webhook answered {status}")
            after = await watcher.wait(slots, marker.text, limit=args.limit)
            cpu_after = cpushare.snapshot(hub_pid=hub.proc.pid)  # the scrapes' CPU not in it
            # at once and together: the held inventory records are written a second after the
            # wave (fleet.activity), and one scrape after another counted them in the window
            ends = await _scrape_all(rig, servers)
        cpu_commit = cpushare.spent(cpu_before, cpu_after)
        latencies = [t - pushed for t in after.values()]
        busy_rss = hub.rss_mib()
        requests: Counter[str] = Counter()
        for server in servers:  # the kit's own components included: a few per second each
            requests.update(apicount.delta(before[server], ends[server]).by_verb())
    floors = await _floors(rig, watcher, root, names, server_of, args=args) if args.floor else {}
    result = {
        "entries": level,
        "servers": len(servers),
        "converge_all_s": converge,
        "hub_listening_s": hub.listening_s,
        "hub_rss_mib_idle": rss,
        "hub_rss_mib_after_commit": busy_rss,
        "hub_rss_mib_per_entry": rss / level,
        "hub_idle_cpu_pct": idle_cpu,
        "commit_latency": figures.summary(latencies),
        "commit_requests_per_entry": {k: round(n / level, 2) for k, n in requests.items()},
        "commit_cpu_s_by_program": cpu_commit,
        **floors,
    }
    print(f"  E={level}: {result}", flush=True)
    return result


async def _scrape_all(rig: Rig, servers: list[str]) -> dict[str, Any]:
    """Every apiserver's request counters, fetched concurrently, parsed once all are in."""
    texts: dict[str, str] = {}

    async def one(server: str) -> None:
        texts[server] = await apicount.fetch(rig.kubeconfigs[server])

    async with anyio.create_task_group() as group:
        for server in servers:
            group.start_soon(one, server)
    return {server: apicount.parse(text) for server, text in texts.items()}


async def _floors(
    rig: Rig,
    watcher: Watcher,
    root: Path,
    names: list[str],
    server_of: dict[str, str],
    *,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The level's commit without a hub (see the module): one write per entry, then two."""
    slots = [(server_of[n], f"f-{n}") for n in names]
    slots_file = root / f"floor-slots-{len(names)}.json"
    slots_file.write_text(json.dumps(slots))
    out: dict[str, Any] = {}
    runs = (("prepare", "p"), ("floor_one_write", "a"), ("floor_two_writes", "b"))
    for label, suffix in runs:
        value = f"f{len(names)}{suffix}"
        flags = ["--prepare"] if label == "prepare" else []
        flags += ["--record"] if label == "floor_two_writes" else []
        command = [sys.executable, "-m", "bench.entry_floor", "--slots", str(slots_file)]
        command += [f"--kubeconfig={name}={path}" for name, path in rig.kubeconfigs.items()]
        async with await anyio.open_process([*command, "--value", value, *flags]) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            lines = BufferedByteReceiveStream(proc.stdout)
            ready = (await lines.receive_until(b"\n", 4096)).decode()
            if ready != "ready":
                raise RuntimeError(f"bench.entry_floor said {ready!r}")
            cpu_before = cpushare.snapshot(hub_pid=proc.pid)
            started = time.time()
            await proc.stdin.send(b"go\n")
            seen = await watcher.wait(slots, f"value:{value}", limit=args.limit)
            cpu = cpushare.spent(cpu_before, cpushare.snapshot(hub_pid=proc.pid))
            said = (await lines.receive_until(b"\n", 4096)).decode()
            await proc.wait()
        if label == "prepare":
            continue
        out[label] = {
            "latency": figures.summary([t - started for t in seen.values()]),
            "failed": json.loads(said)["failed"],
            "cpu_s_by_program": {("floor" if k == "hub" else k): v for k, v in cpu.items()},
        }
    return out


def _sampled(
    hub: HubProcess, args: argparse.Namespace, name: str
) -> contextlib.AbstractContextManager[None]:
    """py-spy on the hub into ``--profile``/`name` while held, or nothing without ``--profile``."""
    if args.profile is None:
        return contextlib.nullcontext()
    args.profile.mkdir(parents=True, exist_ok=True)
    return hub.sampling(args.profile / name, rate=args.profile_rate)


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    with Rig(
        root, count=args.servers, objects=2, provider_name=args.provider,
        clusters_from=args.clusters_from, prefix="many",
    ) as rig:  # fmt: skip
        assert rig.remote is not None and rig.workload is not None
        write_tenants(rig.remote.work, [n for level in args.entries for n in entry_names(level)])
        rig.workload.commit("tenants")
        rig.workload.push()
        value = 0
        rows = []
        async with Watcher(rig.kubeconfigs) as watcher:
            for level in args.entries:
                row = await one_level(rig, watcher, root, level=level, value=value, args=args)
                rows.append(row)
                value += 1
    base = rows[0]
    for row in rows:
        extra = row["entries"] - base["entries"]
        row["marginal_mib_per_entry"] = (
            (row["hub_rss_mib_idle"] - base["hub_rss_mib_idle"]) / extra if extra else None
        )
    return {
        "rows": rows,
        "resync_interval_s": args.resync_interval,
        "layout": args.layout,
        "kustomize": args.kustomize,
    }


_FLOORS = ("floor_one_write", "floor_two_writes")


def print_table(result: dict[str, Any]) -> None:
    rows = []
    for r in result["rows"]:
        marginal = r["marginal_mib_per_entry"]
        lat = r["commit_latency"]
        rows.append([
            r["entries"], r["converge_all_s"], r["hub_rss_mib_idle"], r["hub_rss_mib_per_entry"],
            "-" if marginal is None else f"{marginal:.2f}", r["hub_idle_cpu_pct"],
            lat["p50"], lat["p99"], lat["max"],
            *(f"{r[k]['latency']['p50']:.2f}" if k in r else "-" for k in _FLOORS),
        ])  # fmt: skip
    headers = ["entries", "converge all s", "hub RSS MiB", "MiB/entry", "marginal MiB/entry",
               "idle CPU %", "commit p50 s", "p99 s", "max s",
               "floor p50 s, 1 write", "2 writes"]  # fmt: skip
    print(figures.table(headers, rows))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rig_arguments(p)
    p.add_argument("--servers", type=int, default=4)
    p.add_argument("--entries", type=int, nargs="+", default=[10, 100, 250, 500, 1000])
    p.add_argument("--layout", choices=["app-per-entry", "shared-app"], default="app-per-entry")
    p.add_argument("--kustomize", choices=["krender", "cli"], default="krender")
    p.add_argument("--resync-interval", type=float, default=300.0)
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--idle-window", type=float, default=20.0)
    p.add_argument("--limit", type=float, default=1200.0)
    p.add_argument(
        "--profile", type=Path, default=None, metavar="DIR",
        help="py-spy the hub for one more idle window and during the commit (stacks into DIR)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("bench/results/many_clusters.json"))
    p.add_argument("--profile-rate", type=int, default=20, help="py-spy samples a second")
    p.add_argument(
        "--floor", action="store_true",
        help="also the commit without a hub, per level: one write per entry, then two",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-many-") as tmp:
        result = anyio.run(run, args, Path(tmp), backend="asyncio")
    print_table(result)
    figures.write_results(args.out, result)
    rows = result["rows"]
    figures.plot_scaling(
        args.out.with_suffix(".png"),
        [r["entries"] for r in rows],
        {
            "converge all (from start), s": [r["converge_all_s"] for r in rows],
            "commit to converged p99, s": [r["commit_latency"]["p99"] for r in rows],
        },
        xlabel="cluster entries",
        ylabel="seconds",
        title=f"many cluster entries over {args.servers} real apiservers",
        right={"hub RSS MiB (idle)": [r["hub_rss_mib_idle"] for r in rows]},
        right_label="hub RSS, MiB",
    )
    return result


if __name__ == "__main__":
    main()
