"""Bench: hub replicas sharded through Leases: commit latency with 1 and 3 replicas, clusters
moved per join and per leave.

``python -m bench.shards [--apiservers 2] [--entries 12] [--commits 3] [--lease 8]`` brings up
kit clusters (the first also holds the Leases), spreads the entries over them
(:class:`tests.shard.replicakit.ShardRig`: a namespace per entry, as bench/many_clusters.py does)
and measures, from outside, as an operator would:

- **commit latency**: a commit pushed, one webhook to one replica, until every entry's
  ConfigMap reads the new value (polled by the bench's own client; the poll interval, about a
  fifth of a second, is part of the figure). With 3 replicas the other two learn of the push
  through the ``fleet-refresh`` Lease, within a renew interval (a third of the lease);
- **fleet-wide status**: ``GET /api/status`` of one replica, which with 3 replicas asks the
  other two and merges their answers (:mod:`fleet.shard.front`): 10 calls, median and max;
- **moves**: a fourth replica joins (started), then leaves (SIGTERM: its leases released), then
  a replica dies (SIGKILL): how many entries changed hands each time (the replicas' own
  ``gained``/``lost`` counts in ``/api/shards``) against the fewest possible (rendezvous hashing
  over the live members), and how long until the leases settled.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from bench import figures
from fleet.controlplane import LocalProvider
from fleet.shard.assigning import assign, moves
from tests.shard.replicakit import ShardRig
from tests.sources.gitkit import GitHttpServer

__all__ = ["main"]

_POLL = 0.2


async def _until(check: Any, *, limit: float) -> float:
    """Seconds until `check()` (awaitable) holds; TimeoutError after `limit`."""
    started = time.monotonic()
    with anyio.fail_after(limit):
        while True:
            if await check():
                break
            await anyio.sleep(_POLL)
    return time.monotonic() - started


async def _settled(rig: ShardRig, replicas: list[str]) -> bool:
    want = assign(rig.names, replicas)
    for replica in replicas:
        held = set((await rig.shards(replica))["held"])
        if held != {n for n, o in want.items() if o == replica}:
            return False
    return await rig.holders() == want


async def _latencies(rig: ShardRig, replicas: list[str], *, commits: int, tag: str) -> list[float]:
    found = []
    for i in range(commits):
        value = f"{tag}-{i}"
        rig.commit(value)
        started = time.monotonic()
        status = await rig.replicas[replicas[0]].webhook(rig.url)
        if status != 200:
            raise RuntimeError(f"webhook to {replicas[0]} answered {status}")
        await _until(lambda v=value: rig.all_at(v), limit=300)
        found.append(time.monotonic() - started)
    return found


async def _counts(rig: ShardRig, replicas: list[str]) -> dict[str, tuple[int, int]]:
    return {r: ((s := await rig.shards(r))["gained"], s["lost"]) for r in replicas}


async def _phase(rig: ShardRig, replicas: list[str], *, commits: int) -> dict[str, Any]:
    rig.commit("start")
    for replica in replicas:
        rig.start(replica)
    await _until(lambda: rig.all_at("start"), limit=600)
    await _until(lambda: _settled(rig, replicas), limit=180)
    latency = await _latencies(rig, replicas, commits=commits, tag=f"n{len(replicas)}")
    return {"latency_s": latency, "status_s": await _status_times(rig, replicas[0])}


async def _status_times(rig: ShardRig, replica: str, *, calls: int = 10) -> list[float]:
    """Seconds per ``GET /api/status`` of `replica` (merged from every replica when sharded)."""
    found = []
    for _ in range(calls):
        started = time.monotonic()
        status = await rig.status(replica)
        found.append(time.monotonic() - started)
        if len({a["cluster"] for a in status["apps"]}) != len(rig.names):
            raise RuntimeError(f"/api/status of {replica} does not show every entry")
    return found


async def _moves(rig: ShardRig, commits: int) -> dict[str, Any]:
    three = ["r1", "r2", "r3"]
    four = [*three, "r4"]
    out: dict[str, Any] = {}
    before = await _counts(rig, three)
    rig.start("r4")
    took = await _until(lambda: _settled(rig, four), limit=180)
    after = await _counts(rig, three)
    out["join"] = {
        "moved": sum(after[r][1] - before[r][1] for r in three),
        "fewest": moves(assign(rig.names, three), assign(rig.names, four)),
        "settled_s": took,
    }
    before = await _counts(rig, three)
    rig.replicas["r4"].stop()  # SIGTERM: leases released
    took = await _until(lambda: _settled(rig, three), limit=180)
    after = await _counts(rig, three)
    out["leave"] = {
        "moved": sum(after[r][0] - before[r][0] for r in three),
        "fewest": moves(assign(rig.names, four), assign(rig.names, three)),
        "settled_s": took,
    }
    two = ["r1", "r2"]
    before = await _counts(rig, two)
    proc = rig.replicas["r3"].proc
    assert proc is not None
    proc.kill()  # SIGKILL: its leases expire
    took = await _until(lambda: _settled(rig, two), limit=180)
    after = await _counts(rig, two)
    out["kill"] = {
        "moved": sum(after[r][0] - before[r][0] for r in two),
        "fewest": moves(assign(rig.names, three), assign(rig.names, two)),
        "settled_s": took,
    }
    del commits
    return out


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    names = [f"api-{i}" for i in range(1, args.apiservers + 1)]
    with LocalProvider(kubeconfig_dir=root / "kit") as kit:
        running = kit.up(names)
        results: dict[str, Any] = {"machine": figures.machine(), "args": vars(args)}
        for replicas in (["r1"], ["r1", "r2", "r3"]):
            remotes = root / f"remotes-{len(replicas)}"
            remotes.mkdir()
            with GitHttpServer(remotes) as git:
                rig = ShardRig(
                    root / f"replicas-{len(replicas)}",
                    running,
                    git,
                    namespace=f"bench-{uuid.uuid4().hex[:8]}",
                    lease_seconds=args.lease,
                    entries=args.entries,
                )
                try:
                    found = await _phase(rig, replicas, commits=args.commits)
                    results[f"replicas_{len(replicas)}"] = found
                    if len(replicas) == 3:
                        results["moves"] = await _moves(rig, args.commits)
                finally:
                    rig.stop()
        return results


def print_table(results: dict[str, Any]) -> None:
    rows = []
    for key in ("replicas_1", "replicas_3"):
        lat, st = results[key]["latency_s"], results[key]["status_s"]
        rows.append([
            key, len(lat), f"{statistics.median(lat):.2f}", f"{max(lat):.2f}",
            f"{statistics.median(st) * 1000:.0f}", f"{max(st) * 1000:.0f}",
        ])  # fmt: skip
    heads = ["replicas", "commits", "median s", "max s", "status median ms", "status max ms"]
    print(figures.table(heads, rows))
    rows = [
        [event, m["moved"], m["fewest"], f"{m['settled_s']:.1f}"]
        for event, m in results["moves"].items()
    ]
    print(figures.table(["event", "entries moved", "fewest possible", "settled s"], rows))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.shards", description=__doc__)
    p.add_argument("--apiservers", type=int, default=2, help="kit clusters (default 2)")
    p.add_argument("--entries", type=int, default=12, help="cluster entries (default 12)")
    p.add_argument("--commits", type=int, default=3, help="commits timed per phase (default 3)")
    p.add_argument("--lease", type=float, default=8.0, help="--shard-lease-seconds (default 8)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-shards-") as tmp:
        results = anyio.run(run, args, Path(tmp))
    print_table(results)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()
