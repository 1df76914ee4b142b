"""Start-up time, memory and idle CPU of the local control-plane kit, for 1 and N clusters.

For each (cluster count, etcd mode) it starts a kit, times ``up`` (processes started to every
cluster scheduling onto a Ready node), lets it settle, then reads from ``/proc`` (psutil) the
resident memory of every kit process and the CPU they burn while idle over a window. Repeated,
medians reported. These figures decide how many real clusters the bench can afford on a machine.

    python -m bench.kit_startup --counts 1 8 --repeats 3 --idle-window 20

Writes ``bench/results/kit_startup.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from fleet.controlplane import LocalProvider, processes
from fleet.controlplane.local import EtcdMode


@dataclass(frozen=True)
class Sample:
    clusters: int
    etcd: str
    startup_s: float
    rss_mib: float
    idle_cpu_pct: float  # percent of one core, all kit processes together
    processes: int


def _kit_processes(kit_id: str) -> list[psutil.Process]:
    found = []
    for pid in processes.find_marked(kit_id):
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(count: int, etcd: EtcdMode, *, settle: float, idle_window: float) -> Sample:
    with tempfile.TemporaryDirectory() as tmp:
        kit = LocalProvider(kubeconfig_dir=Path(tmp), etcd=etcd, progress=lambda _: None)
        with kit:
            started = time.monotonic()
            kit.up([f"bench-{i}" for i in range(1, count + 1)])
            startup = time.monotonic() - started
            time.sleep(settle)
            procs = _kit_processes(kit.kit_id)
            before = _cpu_seconds(procs)
            time.sleep(idle_window)
            idle = (_cpu_seconds(procs) - before) / idle_window * 100
            rss = sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
            return Sample(count, etcd, startup, rss, idle, len(procs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--etcd", nargs="+", default=["shared", "per-cluster"], choices=["shared", "per-cluster"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--idle-window", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/kit_startup.json"))
    args = parser.parse_args(argv)

    samples: list[Sample] = []
    for count in args.counts:
        for mode in args.etcd:
            for _ in range(args.repeats):
                sample = measure(count, mode, settle=args.settle, idle_window=args.idle_window)
                samples.append(sample)
                print(f"  {sample}", flush=True)

    rows = []
    print(
        f"\n{'clusters':>8} {'etcd':>12} {'start s':>8} {'RSS MiB':>8} {'MiB/cl':>7} "
        f"{'idle CPU %':>10} {'procs':>5}   (medians of {args.repeats})"
    )
    for count in args.counts:
        for mode in args.etcd:
            group = [s for s in samples if s.clusters == count and s.etcd == mode]
            row = {
                "clusters": count,
                "etcd": mode,
                "startup_s": statistics.median(s.startup_s for s in group),
                "rss_mib": statistics.median(s.rss_mib for s in group),
                "idle_cpu_pct": statistics.median(s.idle_cpu_pct for s in group),
                "processes": group[0].processes,
            }
            rows.append(row)
            print(
                f"{count:>8} {mode:>12} {row['startup_s']:>8.1f} {row['rss_mib']:>8.0f} "
                f"{row['rss_mib'] / count:>7.0f} {row['idle_cpu_pct']:>10.1f} "
                f"{row['processes']:>5}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "samples": [asdict(s) for s in samples],
                "medians": rows,
                "cpu_count": psutil.cpu_count(),
                "mem_total_gib": psutil.virtual_memory().total / 2**30,
            },
            indent=2,
        )
    )
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
