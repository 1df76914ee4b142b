"""Micro-benchmark: a cache hit against a render, for plain YAML and kustomize.

Builds a local repository (a plain app of 200 objects, a kustomize overlay over a base), then for
each renderer times ``DesiredState.desired`` with a cold cache (a full render: plan, extract,
render, store) and with a warm one (a hit), ``--repeats`` times each, and prints the medians and
their ratio. Run: ``python -m bench.render_cache [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio

from fleet.cache import CacheSettings, ManifestCache
from fleet.reconcile.desired import AppSource, DesiredState
from fleet.render import Renderer
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {k: v%d}\n---\n"


def make_repo(root: Path) -> str:
    work = root / "work"
    (work / "plain").mkdir(parents=True)
    (work / "plain" / "all.yaml").write_text("".join(CM % (i, i) for i in range(200)))
    (work / "base").mkdir()
    (work / "base" / "cm.yaml").write_text("".join(CM % (i, i) for i in range(50)))
    (work / "base" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (work / "overlay").mkdir()
    (work / "overlay" / "kustomization.yaml").write_text("resources: [../base]\nnamePrefix: o-\n")
    env = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)
    return work.as_uri()


async def measure(root: Path, url: str, path: str, repeats: int) -> tuple[float, float]:
    cluster = ClusterRef("bench", {})
    app = AppSource(name="bench", repo_url=url, revision="main", path=path)
    sources = Sources(SourceSettings(cache_dir=root / "cache", interval=3600.0))
    renderer = Renderer()
    miss: list[float] = []
    hit: list[float] = []
    for i in range(repeats):
        # a fresh pipeline and cache directory: a cold render (the mirror is already warm)
        state = DesiredState(
            sources=sources,
            renderer=renderer,
            cache=ManifestCache(CacheSettings(root=root / f"render-{path}-{i}")),
        )
        started = time.perf_counter()
        cold = await state.desired(app, cluster)
        miss.append(time.perf_counter() - started)
        assert cold.error is None and cold.rendered_now, cold.error
        started = time.perf_counter()
        warm = await state.desired(app, cluster)
        hit.append(time.perf_counter() - started)
        assert not warm.rendered_now and warm.rendered == cold.rendered
    return statistics.median(miss), statistics.median(hit)


async def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as scratch:
        root = Path(scratch)
        url = make_repo(root)
        print(
            f"{'renderer':<10} {'render ms':>10} {'hit ms':>8} {'ratio':>8}  (median of {repeats})"
        )
        for name, path in (("plain", "plain"), ("kustomize", "overlay")):
            render, hit = await measure(root, url, path, repeats)
            print(f"{name:<10} {render * 1e3:>10.2f} {hit * 1e3:>8.3f} {render / hit:>7.0f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    anyio.run(main, parser.parse_args().repeats)
