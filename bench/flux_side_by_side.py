"""fleet against Flux side by side: the same clusters, repository, app and watchers, per commit.

One rig per cluster count (bench/rig.py): N target kit clusters plus one more, the **management
cluster** of Flux's hub mode, where source-controller and kustomize-controller v1.9.0 (built from
their Go modules, :mod:`bench.flux.build`) run as local processes (:mod:`bench.flux.controllers`):
one GitRepository on the rig's ``git http-backend``, and one Kustomization per target cluster whose
``spec.kubeConfig.secretRef`` holds that cluster's kubeconfig, applying the same 50-object
kustomization (``app/``) into namespace ``bench-flux``. fleet runs as ``fleet run``
(bench/hubproc.py) with the same kubeconfigs and the same path into ``bench-fleet``. Neither polls
during the run (intervals of an hour): each commit is pushed, then triggered the way each is in
production: fleet by its signed GitHub webhook (which names the pushed sha), Flux as its Receiver
does, a ``reconcile.fluxcd.io/requestedAt`` annotation on the GitRepository and each Kustomization
(``--flux-annotate source`` annotates the GitRepository alone). Rounds alternate fleet, Flux,
fleet, Flux..., each its own commit, so both run under the same machine noise; a few seconds of
settling separate rounds. Every latency runs from the start of ``git push`` to the moment the
independent watcher (bench/watcher.py) sees the commit's value served by that cluster.

A run is `--repeats` blocks of `--commits` commits per system; figures per block (per-cluster
p50/p99, all-converged p50, Flux ÷ fleet), then medians over blocks. The fleet hub logs JSON at
debug level; :mod:`bench.breakdown` cuts each fleet commit into push, webhook, listing, queue,
fetch, render and apply from that log.

    python -m bench.flux_side_by_side --clusters 8 4 --commits 10 --repeats 3

Writes ``bench/results/flux-side-by-side.json`` (every sample, the breakdown, the machine) and,
beside it, each run's hub and controller logs (``.n8.hub.log``...).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from kubernetes_asyncio import config

from bench import breakdown, figures
from bench.flux import build, controllers, objects, timeline
from bench.hubproc import SECRET, HubProcess
from bench.rig import Rig, add_rig_arguments, ensure_namespaces, fleet_yaml
from bench.watcher import Watcher
from tests.sources.gitkit import git

__all__ = ["Round", "block_figures", "main", "ratios", "run"]

NS_FLEET, NS_FLUX = "bench-fleet", "bench-flux"
IDLE_S = 3600.0  # poll and resync intervals: nothing reconciles unasked during a run


@dataclass
class Round:
    """One commit through one system: per-cluster latency from the start of the push."""

    block: int
    index: int
    system: str  # fleet or flux
    marker: str
    sha: str
    latency: dict[str, float] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)  # push_start, push_end, trigger...
    cpu_s: float = 0.0  # the system's CPU seconds during the round

    @property
    def converged(self) -> float:
        return max(self.latency.values())


def block_figures(rounds: list[Round]) -> dict[str, dict[str, float | None]]:
    """Per system: per-cluster p50/p99 and the all-converged p50 of one block (pure)."""
    out: dict[str, dict[str, float | None]] = {}
    for system in ("fleet", "flux"):
        mine = [r for r in rounds if r.system == system]
        values = [v for r in mine for v in r.latency.values()]
        per = figures.summary(values)
        every = figures.summary([r.converged for r in mine])
        out[system] = {
            "samples": float(per["n"]),
            "p50": per.get("p50"),
            "p99": per.get("p99"),
            "all_converged_p50": every.get("p50"),
            "cpu_s_per_commit": statistics.median([r.cpu_s for r in mine]) if mine else None,
        }
    return out


def ratios(block: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """Flux ÷ fleet of a block's per-cluster p50 and p99 and all-converged p50 (pure)."""
    out: dict[str, float | None] = {}
    for key in ("p50", "p99", "all_converged_p50"):
        fleet, flux = block["fleet"].get(key), block["flux"].get(key)
        out[key] = flux / fleet if fleet and flux is not None else None
    return out


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


async def _webhook(port: int, *, repo_url: str, before: str, sha: str) -> int:
    """GitHub's push webhook, signed, carrying the branch's old and new shas as GitHub's does
    (``before``, ``after``). The old one is the commit before: in the interleaved loop a Flux
    round's, which the hub never heard of, so it trusts the sha as a descendant of its listing."""
    payload = {"ref": "refs/heads/main", "before": before, "after": sha}
    body = json.dumps({**payload, "repository": {"clone_url": repo_url}})
    signature = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/webhooks/github", data=body, headers=headers) as r,
    ):
        return r.status


class SideBySide:
    """The alternating commit loop over a running rig, hub, Flux and watcher."""

    def __init__(
        self,
        rig: Rig,
        *,
        hub: HubProcess,
        flux: controllers.FluxControllers,
        flux_api: Any,
        targets: list[str],
        args: argparse.Namespace,
    ) -> None:
        self.rig, self.hub, self.flux, self.flux_api = rig, hub, flux, flux_api
        self.targets = targets
        self.args = args
        self.rounds: list[Round] = []
        self.watcher: Watcher | None = None

    def _slots(self, namespace: str) -> list[tuple[str, str]]:
        return [(c, namespace) for c in self.targets]

    async def _commit_and_push(self) -> tuple[str, str, str, float, float]:
        workload = self.rig.workload
        assert workload is not None
        marker = workload.edit()
        before = git("rev-parse", "HEAD", cwd=workload.work)
        sha = workload.commit(f"bench: {marker.text}")
        started = await anyio.to_thread.run_sync(workload.push)
        return marker.text, before, sha, started, time.time()

    async def one(self, system: str, *, block: int) -> Round:
        assert self.watcher is not None
        marker, before, sha, started, pushed = await self._commit_and_push()
        cpu = self.hub.cpu_seconds() if system == "fleet" else self.flux.cpu_seconds()
        sent = time.time()
        if system == "fleet":
            status = await _webhook(
                self.hub.port, repo_url=self.rig.repo_url, before=before, sha=sha
            )
            if status not in (200, 202):
                raise RuntimeError(
                    f"the hub answered the webhook with {status}: see {self.hub.log}"
                )
        else:
            clusters = self.targets if self.args.flux_annotate == "all" else []
            await controllers.request_reconcile(
                self.flux_api, clusters=clusters, stamp=f"{time.time():.6f}"
            )
        answered = time.time()
        namespace = NS_FLEET if system == "fleet" else NS_FLUX
        seen = await self.watcher.wait(self._slots(namespace), marker, limit=self.args.limit)
        await anyio.sleep(self.args.settle)  # the tail of this round must not load the next
        used = (self.hub.cpu_seconds() if system == "fleet" else self.flux.cpu_seconds()) - cpu
        index = int(marker.split(":v")[1])
        result = Round(block, index, system, marker, sha, cpu_s=used)
        result.latency = {c: t - started for (c, _), t in seen.items()}
        result.times = {
            "push_start": started, "push_end": pushed, "trigger_sent": sent,
            "trigger_answered": answered, **{f"seen:{c}": t for (c, _), t in seen.items()},
        }  # fmt: skip
        self.rounds.append(result)
        return result


def fleet_breakdown(rounds: list[dict[str, Any]], log: Path) -> dict[str, Any]:
    """The fleet rounds (as written to the results) cut into phases from the hub's JSON log."""
    events = breakdown.parse_log(log.read_text(errors="replace").splitlines())
    fleet = [r for r in rounds if r["system"] == "fleet"]
    rows = []
    for i, r in enumerate(fleet):
        times = r["times"]
        until = fleet[i + 1]["times"]["push_start"] if i + 1 < len(fleet) else float("inf")
        commit = breakdown.CommitTimes(
            index=r["index"], sha=r["sha"], push_start=times["push_start"],
            push_end=times["push_end"], webhook_sent=times["trigger_sent"],
            webhook_answered=times["trigger_answered"],
            seen={k.split(":", 1)[1]: v for k, v in times.items() if k.startswith("seen:")},
        )  # fmt: skip
        rows.append(breakdown.breakdown(commit, events, until=until))
    return {"commits": rows, "summary": breakdown.summarise(rows)}


def flux_breakdown(
    rounds: list[dict[str, Any]], *, source: Path, kustomize: Path
) -> dict[str, Any]:
    """The Flux rounds cut into phases from the two controllers' JSON logs."""
    src = timeline.parse_lines(source.read_text(errors="replace").splitlines())
    kus = timeline.parse_lines(kustomize.read_text(errors="replace").splitlines())
    rows = []
    for r in (r for r in rounds if r["system"] == "flux"):
        clusters = [k.split(":", 1)[1] for k in r["times"] if k.startswith("seen:")]
        split = timeline.split_round(
            times=r["times"], subject=f"bench: {r['marker']}", sha=r["sha"],
            kustomizations={c: objects.kustomization_name(c) for c in clusters},
            source=src, kustomize=kus,
        )  # fmt: skip
        rows.append({"index": r["index"], "sha": r["sha"][:12], "clusters": split})
    return {"commits": rows, "summary": breakdown.summarise(rows, phases=timeline.FLUX_PHASES)}


async def run_count(
    args: argparse.Namespace, root: Path, *, count: int, binaries: dict[str, Path]
) -> dict[str, Any]:
    """One rig of `count` target clusters (+ Flux's management cluster): every block."""
    crds = build.crd_documents()
    with Rig(
        root, count=count + 1, objects=args.objects, provider_name=args.provider,
        clusters_from=args.clusters_from,
    ) as rig:  # fmt: skip
        names = sorted(rig.kubeconfigs, key=lambda n: (len(n), n))
        management, targets = names[-1], names[:-1]
        kubeconfigs = {n: rig.kubeconfigs[n] for n in targets}
        await ensure_namespaces(kubeconfigs, [NS_FLEET, NS_FLUX])
        hub = HubProcess(
            root / "hub", poll_interval=IDLE_S, resync_interval=IDLE_S,
            log_level=args.hub_log_level, extra_args=["--log-format", "json"],
        )  # fmt: skip
        (root / "hub").mkdir(parents=True, exist_ok=True)
        hub.config.write_text(fleet_yaml(rig.repo_url, namespace=NS_FLEET))
        rig.drop_clusters(hub.clusters, targets)
        tuning = (
            controllers.Tuning()
            if args.flux_defaults
            else controllers.Tuning(args.flux_concurrent, args.flux_qps, args.flux_burst)
        )
        flux = controllers.FluxControllers(
            binaries, kubeconfig=rig.kubeconfigs[management], root=root / "flux", tuning=tuning
        )
        api = await config.new_client_from_config(config_file=str(rig.kubeconfigs[management]))
        try:
            await controllers.install(
                api, crds=crds, repo_url=rig.repo_url, targets=kubeconfigs, path="app",
                target_namespace=NS_FLUX,
            )  # fmt: skip
            with hub, flux:
                await flux.wait_ready()
                async with Watcher(kubeconfigs) as watcher:
                    loop = SideBySide(
                        rig, hub=hub, flux=flux, flux_api=api, targets=targets, args=args
                    )
                    loop.watcher = watcher
                    first = "value:v0"
                    t0 = time.time()
                    await watcher.wait(loop._slots(NS_FLEET), first, limit=300)
                    await watcher.wait(loop._slots(NS_FLUX), first, limit=300)
                    first_sync = time.time() - t0
                    for _ in range(args.warmup):
                        await loop.one("fleet", block=-1)
                        await loop.one("flux", block=-1)
                    loop.rounds.clear()
                    for block in range(args.repeats):
                        for k in range(args.commits):
                            order = ("fleet", "flux") if k % 2 == 0 else ("flux", "fleet")
                            for system in order:
                                r = await loop.one(system, block=block)
                                print(
                                    f"  {count} clusters, block {block}, {system} "
                                    f"{r.marker}: p50 {statistics.median(r.latency.values()):.2f}"
                                    f" s, all {r.converged:.2f} s",
                                    flush=True,
                                )
                    rss = {"hub_mib": hub.rss_mib(), "flux_mib": flux.rss_mib()}
                if not flux.alive():
                    raise RuntimeError(f"a Flux controller exited during the run: {flux.logs}")
                rounds = [asdict(r) for r in loop.rounds]
                split = fleet_breakdown(rounds, hub.log)
                flux_split = flux_breakdown(
                    rounds, source=flux.logs["source-controller"],
                    kustomize=flux.logs["kustomize-controller"],
                )  # fmt: skip
                args.out.parent.mkdir(parents=True, exist_ok=True)
                for name, log in {"hub": hub.log, **flux.logs}.items():
                    shutil.copyfile(log, args.out.with_suffix(f".n{count}.{name}.log"))
        finally:
            await api.close()
    blocks: list[dict[str, Any]] = []
    for block in range(args.repeats):
        figs = block_figures([r for r in loop.rounds if r.block == block])
        blocks.append({"figures": figs, "flux_over_fleet": ratios(figs)})
    medians = {
        system: {
            key: _median([b["figures"][system][key] for b in blocks])
            for key in ("p50", "p99", "all_converged_p50", "cpu_s_per_commit")
        }
        for system in ("fleet", "flux")
    }
    over = {
        key: _median([b["flux_over_fleet"][key] for b in blocks])
        for key in ("p50", "p99", "all_converged_p50")
    }
    return {
        "clusters": count,
        "first_sync_s": first_sync,
        "blocks": blocks,
        "medians": medians,
        "flux_over_fleet": over,
        "rss": rss,
        "breakdown": split,
        "flux_breakdown": flux_split,
        "rounds": rounds,
    }


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    binaries = await anyio.to_thread.run_sync(build.ensure_controllers)
    out: dict[str, Any] = {"runs": []}
    for count in args.clusters:
        result = await run_count(args, root / f"n{count}", count=count, binaries=binaries)
        out["runs"].append(result)
        print_tables({"runs": [result]})
    out["config"] = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
    }
    return out


def print_tables(result: dict[str, Any]) -> None:
    rows = []
    for r in result["runs"]:
        m, o = r["medians"], r["flux_over_fleet"]
        rows.append([
            r["clusters"], m["fleet"]["p50"], m["fleet"]["p99"], m["flux"]["p50"],
            m["flux"]["p99"], o["p50"], m["fleet"]["all_converged_p50"],
            m["flux"]["all_converged_p50"], o["all_converged_p50"],
        ])  # fmt: skip
    headers = [
        "clusters", "fleet p50 s", "fleet p99 s", "Flux p50 s", "Flux p99 s",
        "Flux ÷ fleet p50", "fleet all s", "Flux all s", "Flux ÷ fleet all",
    ]  # fmt: skip
    print(figures.table(headers, rows))
    for r in result["runs"]:
        s = r["breakdown"]["summary"]
        per, last = s["per_cluster_median_s"], s["slowest_cluster_median_s"]
        phases = [*breakdown.PHASES, "total"]
        print(f"fleet, {r['clusters']} clusters, median per phase (s):")
        print(
            figures.table(
                ["path", *phases],
                [
                    ["per cluster", *[per[p] for p in phases]],
                    ["slowest cluster", *[last[p] for p in phases]],
                ],
            )
        )
        f = r["flux_breakdown"]["summary"]
        fphases = [*timeline.FLUX_PHASES, "total"]
        print(f"Flux, {r['clusters']} clusters, median per phase (s):")
        print(
            figures.table(
                ["path", *fphases],
                [
                    ["per cluster", *[f["per_cluster_median_s"][p] for p in fphases]],
                    ["slowest cluster", *[f["slowest_cluster_median_s"][p] for p in fphases]],
                ],
            )
        )
        print(
            f"  listing {s['listing_s']} s, fetch {s['fetch_s']} s, render {s['render_s']} s, "
            f"git processes/commit {s['git_processes_per_commit']}, "
            f"after sighting {per['after_seen_s']} s"
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rig_arguments(p)
    p.add_argument("--clusters", type=int, nargs="+", default=[8, 4])
    p.add_argument("--objects", type=int, default=50)
    p.add_argument("--commits", type=int, default=10, help="per system and block")
    p.add_argument("--repeats", type=int, default=3, help="blocks; figures are medians over them")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--settle", type=float, default=2.0, help="seconds between rounds")
    p.add_argument("--flux-defaults", action="store_true", help="no --concurrent/QPS tuning")
    p.add_argument("--flux-concurrent", type=int, default=20)
    p.add_argument("--flux-qps", type=int, default=500)
    p.add_argument("--flux-burst", type=int, default=1000)
    p.add_argument(
        "--flux-annotate", choices=["all", "source"], default="all",
        help="what the Receiver lists: the GitRepository and every Kustomization, or the source",
    )  # fmt: skip
    p.add_argument("--hub-log-level", default="debug", help="debug: git timings for the split")
    p.add_argument("--limit", type=float, default=120.0, help="give up on a commit after this")
    p.add_argument("--out", type=Path, default=Path("bench/results/flux-side-by-side.json"))
    p.add_argument(
        "--reanalyse", type=Path, default=None, metavar="RESULTS",
        help="run nothing: recompute both breakdowns from RESULTS and the logs beside it",
    )  # fmt: skip
    return p


def reanalyse(path: Path) -> dict[str, Any]:
    """Both breakdowns again from a results file and the logs the run copied beside it."""
    result: dict[str, Any] = json.loads(path.read_text())
    for r in result["runs"]:
        logs = {n: path.with_suffix(f".n{r['clusters']}.{n}.log") for n in build.CONTROLLERS}
        r["breakdown"] = fleet_breakdown(
            r["rounds"], path.with_suffix(f".n{r['clusters']}.hub.log")
        )
        r["flux_breakdown"] = flux_breakdown(
            r["rounds"], source=logs["source-controller"], kustomize=logs["kustomize-controller"]
        )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if args.reanalyse is not None:
        result = reanalyse(args.reanalyse)
        print_tables(result)
        run_on = result.pop("machine", None)
        figures.write_results(args.reanalyse, {**result, "machine_of_run": run_on})
        return result
    with tempfile.TemporaryDirectory(prefix="fleet-bench-flux-") as tmp:
        result = anyio.run(run, args, Path(tmp), backend="asyncio")
    print_tables(result)
    figures.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
