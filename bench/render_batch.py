"""Micro-benchmark: the cost of one kustomize render, a CLI process each against the batch renderer.

Lays out a checkout of ``--tenants`` overlays (``tenants/tNNN``: a name prefix, a label and a
replica count over a base of ``--objects`` objects, the shared-app layout of bench.many_clusters),
then builds every overlay twice over: with the kustomize CLI (``kubectl kustomize``, one process a
render) and with krender (one process for all, ``--jobs`` renders at once), ``--jobs`` requests in
flight either way. Prints, per way: wall time per render and CPU per render (the children's CPU:
the CLI processes, reaped; krender's from /proc before it stops), and writes them to
``bench/results/render_batch.json``. Both ways are checked to give the same objects.
Run: ``python -m bench.render_batch [--tenants N] [--objects N] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from fleet.controlplane.binaries import ensure_tool
from fleet.render import DocumentLimits, parse_documents
from fleet.render.kustomize import Builder
from fleet.render.tools import tool_env
from fleet.settings import default_cache_dir

RESULTS = Path(__file__).parent / "results" / "render_batch.json"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {k: v%d}\n---\n"
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""


def lay_out(root: Path, *, tenants: int, objects: int) -> list[str]:
    (root / "base").mkdir(parents=True)
    (root / "base" / "cm.yaml").write_text("".join(CM % (i, i) for i in range(objects - 1)))
    (root / "base" / "deploy.yaml").write_text(DEPLOY)
    (root / "base" / "kustomization.yaml").write_text("resources: [cm.yaml, deploy.yaml]\n")
    paths = []
    for n in range(tenants):
        path = f"tenants/t{n:04d}"
        (root / path).mkdir(parents=True)
        (root / path / "kustomization.yaml").write_text(
            f"resources: [../../base]\nnamePrefix: t{n}-\n"
            f"labels: [{{pairs: {{tenant: t{n}}}}}]\n"
            f"replicas: [{{name: web, count: {n % 5 + 1}}}]\n"
        )
        paths.append(path)
    return paths


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _build_all(
    builder: Builder, checkout: Path, paths: list[str], jobs: int
) -> dict[str, bytes]:
    env = tool_env(checkout.parent / "home")
    out: dict[str, bytes] = {}
    limiter = anyio.CapacityLimiter(jobs)

    async def one(path: str) -> None:
        async with limiter:
            out[path] = await builder.build(checkout, path, env=env)

    async with anyio.create_task_group() as group:
        for path in paths:
            group.start_soon(one, path)
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    cli_binary = shutil.which("kubectl") or shutil.which("kustomize")
    if cli_binary is None:
        raise SystemExit("neither kubectl nor kustomize is on PATH")
    krender = ensure_tool("krender", cache_dir=default_cache_dir())
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as scratch:
        checkout = Path(scratch) / "repo"
        paths = lay_out(checkout, tenants=args.tenants, objects=args.objects)
        cli = Builder(binary=Path(cli_binary))
        cpu, started = _children_cpu(), time.perf_counter()
        by_cli = await _build_all(cli, checkout, paths, args.jobs)
        cli_wall, cli_cpu = time.perf_counter() - started, _children_cpu() - cpu

        batch = Builder(batch=krender, jobs=args.jobs)
        assert batch.batch is not None
        await batch.build(checkout, paths[0], env={})  # start the process: not a render's cost
        worker = batch.batch._worker
        assert worker is not None
        cpu, started = _process_cpu(worker.process.pid), time.perf_counter()
        by_batch = await _build_all(batch, checkout, paths, args.jobs)
        batch_wall = time.perf_counter() - started
        batch_cpu = _process_cpu(worker.process.pid) - cpu
        version = await batch.version()
        await batch.aclose()
    limits = DocumentLimits()
    for path in paths:
        same = parse_documents(by_cli[path], source=path, limits=limits) == parse_documents(
            by_batch[path], source=path, limits=limits
        )
        assert same, f"{path}: krender and the CLI disagree"
    n = len(paths)
    return {
        "tenants": n,
        "objects_per_render": args.objects,
        "jobs": args.jobs,
        "cli": {
            "binary": Path(cli_binary).name,
            "wall_ms_per_render": round(cli_wall / n * 1e3, 2),
            "cpu_ms_per_render": round(cli_cpu / n * 1e3, 2),
        },
        "krender": {
            "version": version,
            "wall_ms_per_render": round(batch_wall / n * 1e3, 2),
            "cpu_ms_per_render": round(batch_cpu / n * 1e3, 2),
        },
        "cpu_ratio": round(cli_cpu / batch_cpu, 1) if batch_cpu else None,
        "wall_ratio": round(cli_wall / batch_wall, 1) if batch_wall else None,
        "machine_load_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=4)
    result = anyio.run(measure, parser.parse_args())
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
