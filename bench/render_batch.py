"""Micro-benchmark: the cost of one kustomize render, a CLI process each against the batch renderer.

Lays out a checkout of ``--tenants`` overlays (``tenants/tNNN``: a name prefix, a label and a
replica count over a base of ``--objects`` objects, the shared-app layout of bench.many_clusters),
then builds every overlay twice over: with the kustomize CLI (``kubectl kustomize``, one process a
render) and with krender (one process for all, ``--jobs`` renders at once), ``--jobs`` requests in
flight either way. Prints, per way: wall time per render and CPU per render (the children's CPU:
the CLI processes, reaped; krender's from /proc before it stops), and writes them to
``bench/results/render_batch.json``. Both ways are checked to give the same objects. Then the
decode: the hub's CPU to decode krender's YAML answers (``parse_documents``, what the engine did
before krender answered JSON) against asking krender for JSON (``Builder.documents``, what the
engine does now: krender's CPU, the hub's CPU and the wall time, per render), also checked to give
the same objects.

``--pipeline`` measures the whole render pipeline instead (``DesiredState.desired``, as the hub
runs it at a new commit: resolve, plan, cache key, extract, render, store) for every tenant of a
git repository laid out by :func:`bench.workload.write_tenants` (the tenants of
bench.many_clusters), one cluster entry per tenant, both ways, and counts the git processes per
entry (a counting ``git`` shim on PATH).
Run: ``python -m bench.render_batch [--tenants N] [--objects N] [--jobs N] [--pipeline]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench.workload import set_tenant_value, write_tenants
from fleet.cache import CacheSettings, ManifestCache
from fleet.controlplane.binaries import ensure_tool
from fleet.reconcile.desired import AppSource, DesiredState
from fleet.render import DocumentLimits, Renderer, RenderSettings, parse_documents
from fleet.render.documents import objects_of
from fleet.render.kustomize import Builder
from fleet.render.tools import tool_env
from fleet.settings import default_cache_dir
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef

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


async def _documents_all(
    builder: Builder, checkout: Path, paths: list[str], jobs: int
) -> dict[str, list[Any]]:
    """Every path's documents through :meth:`Builder.documents` (krender's JSON answer)."""
    out: dict[str, list[Any]] = {}
    limiter = anyio.CapacityLimiter(jobs)

    async def one(path: str) -> None:
        async with limiter:
            out[path] = await builder.documents(checkout, path, env={}, limits=DocumentLimits())

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

        cpu, hub, started = _process_cpu(worker.process.pid), _self_cpu(), time.perf_counter()
        by_json = await _documents_all(batch, checkout, paths, args.jobs)
        json_wall = time.perf_counter() - started
        json_hub = _self_cpu() - hub
        json_cpu = _process_cpu(worker.process.pid) - cpu
        assert batch.batch.yaml_decoded == 0, "krender answered YAML: an old build?"
        version = await batch.version()
        await batch.aclose()
    limits = DocumentLimits()
    hub, started = _self_cpu(), time.perf_counter()
    from_yaml = {p: parse_documents(by_batch[p], source=p, limits=limits) for p in paths}
    yaml_wall, yaml_hub = time.perf_counter() - started, _self_cpu() - hub
    for path in paths:
        same = parse_documents(by_cli[path], source=path, limits=limits) == from_yaml[path]
        assert same, f"{path}: krender and the CLI disagree"
        same = objects_of(by_json[path], source=path) == from_yaml[path]
        assert same, f"{path}: krender's JSON and YAML answers disagree"
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
        "yaml_decode": {
            "hub_cpu_ms_per_render": round(yaml_hub / n * 1e3, 2),
            "wall_ms_per_render": round(yaml_wall / n * 1e3, 2),
        },
        "krender_json": {
            "wall_ms_per_render": round(json_wall / n * 1e3, 2),
            "cpu_ms_per_render": round(json_cpu / n * 1e3, 2),
            "hub_cpu_ms_per_render": round(json_hub / n * 1e3, 2),
        },
        "cpu_ratio": round(cli_cpu / batch_cpu, 1) if batch_cpu else None,
        "wall_ratio": round(cli_wall / batch_wall, 1) if batch_wall else None,
        "machine_load_1m": round(os.getloadavg()[0], 2),
    }


async def _desire_all(
    state: DesiredState,
    app: AppSource,
    names: list[str],
    limiter: anyio.CapacityLimiter,
    calls: Path,
) -> dict[str, float]:
    """Every entry's desired state at the commit its branch names now; the cost per entry."""
    _git_calls(calls, reset=True)
    cpu, children, started = _self_cpu(), _children_cpu(), time.perf_counter()

    async def one(name: str) -> None:
        async with limiter:
            desired = await state.desired(app, ClusterRef(name))
            assert desired.error is None, desired.error

    async with anyio.create_task_group() as group:
        for name in names:
            group.start_soon(one, name)
    n = len(names)
    return {
        "wall_ms_per_entry": round((time.perf_counter() - started) / n * 1e3, 2),
        "hub_cpu_ms_per_entry": round((_self_cpu() - cpu) / n * 1e3, 2),
        "git_and_cli_cpu_ms_per_entry": round((_children_cpu() - children) / n * 1e3, 2),
        "git_processes_per_entry": round(_git_calls(calls) / n, 2),
    }


def _git_calls(log: Path, *, reset: bool = False) -> int:
    """The git processes the shim logged (and the log emptied, with `reset`)."""
    if reset:
        log.write_text("")
        return 0
    return len(log.read_text().splitlines())


def _next_commit(work: Path, way: str) -> None:
    set_tenant_value(work, f"next-{way}")
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x")
    env.update(GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x")
    subprocess.run(["git", "commit", "-qam", way], cwd=work, env=env, check=True)


async def pipeline(args: argparse.Namespace) -> dict[str, Any]:
    cli_binary = shutil.which("kubectl") or shutil.which("kustomize")
    if cli_binary is None:
        raise SystemExit("neither kubectl nor kustomize is on PATH")
    krender = ensure_tool("krender", cache_dir=default_cache_dir())
    result: dict[str, Any] = {"tenants": args.tenants, "jobs": args.jobs}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as scratch:
        root = Path(scratch)
        calls = root / "git-calls"
        shim = root / "shim" / "git"
        shim.parent.mkdir()
        real = shutil.which("git")
        shim.write_text(f'#!/bin/sh\necho x >> {calls}\nexec {real} "$@"\n')
        shim.chmod(0o755)
        os.environ["PATH"] = f"{shim.parent}:{os.environ['PATH']}"
        work = root / "work"
        names = [f"e{i:04d}" for i in range(args.tenants)]
        await anyio.to_thread.run_sync(_tenant_repo, work, names)
        limiter = anyio.CapacityLimiter(64)
        for way, settings in (
            ("cli", RenderSettings(kustomize=Path(cli_binary), concurrency=args.jobs)),
            ("krender", RenderSettings(concurrency=args.jobs)),
        ):
            os.environ["FLEET_KRENDER"] = str(krender)
            renderer = Renderer(settings)
            state = DesiredState(
                sources=Sources(SourceSettings(cache_dir=root / f"cache-{way}", interval=3600.0)),
                renderer=renderer,
                cache=ManifestCache(CacheSettings(root=root / f"render-{way}")),
            )
            app = AppSource(
                name="web",
                repo_url=work.as_uri(),
                revision="main",
                path="tenants/{{ cluster.name }}",
            )
            await state.desired(app, ClusterRef(names[0]))  # the mirror, the tool's version
            row: dict[str, Any] = {}
            for commit in ("first", "next"):
                if commit == "next":  # every tenant's ConfigMap changes: the bench's commit
                    await anyio.to_thread.run_sync(_next_commit, work, way)
                    await state.sources.refresh(work.as_uri())  # as the webhook does
                row[commit] = await _desire_all(state, app, names, limiter, calls)
            row["renders"] = renderer.renders
            batch = renderer._kustomize.batch
            if batch is not None and batch._worker is not None:
                row["krender_cpu_s"] = round(_process_cpu(batch._worker.process.pid), 2)
                await batch.aclose()
            result[way] = row
    return result


def _tenant_repo(work: Path, names: list[str]) -> None:
    work.mkdir()
    write_tenants(work, names)
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x")
    env.update(GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x")
    for git_args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "b"]):
        subprocess.run(["git", *git_args], cwd=work, env=env, check=True)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--pipeline", action="store_true")
    args = parser.parse_args()
    result = anyio.run(pipeline if args.pipeline else measure, args)
    print(json.dumps(result, indent=2))
    out = RESULTS.with_name("render_pipeline.json") if args.pipeline else RESULTS
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
