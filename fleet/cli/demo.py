"""``fleet demo``: the first run, end to end on one machine, each step printed as it happens.

1. the control-plane kit starts N local clusters, ``staging-1`` labelled ``env=staging`` and
   ``prod-1``... ``env=prod`` (a first run's Go builds and the start print progress lines);
2. a bare config repo and its work tree under the demo directory, seeded from
   ``examples/config-repo`` (plus a Namespace in its base, renamed by each overlay), and the
   example's ``fleet.yaml`` pointed at it: its apps pick clusters by ``env``;
3. the hub, in-process: the app x cluster matrix, printed as it changes until all is Synced;
4. CI's step, ``fleet image set``'s code (:mod:`fleet.gitops`) on every overlay in one commit,
   pushed, the hub told as by a webhook; the Deployment's image is read from each cluster by a
   client of the demo's own, and the push-to-seen time printed with the hub's commit-to-applied;
5. ``fleet rollback`` of that commit (a pushed ``git revert``), read back the same way; then a
   summary and the audit trail (``fleet history``: the hub's records joined with git log).

The demo directory (default ``.fleet-demo/``) is wiped and reseeded by each run; a non-empty one it
did not make is refused. ``--keep`` keeps hub and clusters until Ctrl-C. Ctrl-C stops the hub and
the kit (which removes its own processes), exit 130; a failure prints one ``error:`` line, exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from kubernetes_asyncio import client as kube_client
from kubernetes_asyncio import config as kube_config

from fleet.cli import demorepo, hubcmd
from fleet.cli.demorepo import DemoError
from fleet.config import App, Config
from fleet.controlplane import LocalProvider, RunningCluster
from fleet.errors import FleetError
from fleet.gitops import bump, images, kustomization, revert, workspace
from fleet.gitops.publish import publish
from fleet.hub.hub import Hub
from fleet.hub.server import ServerSettings
from fleet.hub.settings import HubSettings
from fleet.hub.webhooks import Push
from fleet.report import matrix
from fleet.types import ClusterRef

__all__ = ["DemoError", "add_arguments", "run"]

IMAGE = "webapp"  # the image as the example's manifests name it, and its Deployment's name
NEW_TAG = "0.2.0"


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="the first run: local clusters, a config repo, the hub, a commit, a rollback"
    )
    demo.add_argument("--clusters", type=int, default=3, help="how many clusters (default 3)")
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path(".fleet-demo"),
        help="where the demo keeps its state (default .fleet-demo/)",
    )
    demo.add_argument("--keep", action="store_true", help="keep hub and clusters until Ctrl-C")
    demo.add_argument(
        "--listen",
        default="127.0.0.1:0",
        help="HOST:PORT of the hub (default 127.0.0.1:0, any free port)",
    )
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds per step (default 180)")
    demo.add_argument(
        "--log-level", default="WARNING", help="the hub's log level (default WARNING)"
    )


# -- the scene: output, directory, repo, fleet.yaml, clusters ---------------------------------


@dataclass(frozen=True)
class Target:
    """One cluster and an app that selects it."""

    cluster: RunningCluster
    app: App

    @property
    def env(self) -> str:
        return self.cluster.labels["env"]


@dataclass
class Scene:
    """The demo directory and what runs from it; `say` prints a line stamped with the time."""

    root: Path
    timeout: float
    started: float = field(default_factory=time.monotonic)
    targets: list[Target] = field(default_factory=list)

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    @property
    def bare(self) -> Path:
        return self.root / "config.git"

    @property
    def work(self) -> Path:
        return self.root / "config"

    @property
    def paths(self) -> list[str]:
        return sorted({t.app.source.path for t in self.targets})


@contextlib.contextmanager
def _ticking(scene: Scene, what: str) -> Iterator[None]:
    """Print `still <what>` every 5 s while a blocking step runs in this thread."""
    done, began = threading.Event(), time.monotonic()

    def tick() -> None:
        while not done.wait(5.0):
            scene.say(f"  still {what} ({time.monotonic() - began:.0f} s)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _targets(config: Config, clusters: list[RunningCluster]) -> list[Target]:
    return [
        Target(cluster=cluster, app=app)
        for cluster in clusters
        for app in config.apps
        if app.destination.clusters.matches(ClusterRef(cluster.name, dict(cluster.labels)))
    ]


# -- the story, in the hub's event loop -------------------------------------------------------


class _Story:
    """Steps 3 to 5 against a running hub; each cluster is read by a client of the demo's own."""

    def __init__(self, scene: Scene, hub: Hub) -> None:
        self.scene, self.hub = scene, hub
        self.url = str(scene.bare.resolve())
        self.apis: dict[str, Any] = {}

    async def run(self, seed: str, config_path: Path) -> list[str]:
        """The whole story; the summary lines."""
        scene, first = self.scene, self.scene.targets[0]
        waited = await self.converge(seed, "status (fleet status)")
        summary = [f"seed {seed[:7]}: {len(scene.targets)} cluster(s) converged in {waited:.1f} s"]
        async with contextlib.AsyncExitStack() as stack:
            for t in scene.targets:
                path = str(t.cluster.kubeconfig)
                client = await kube_config.new_client_from_config(config_file=path)
                self.apis[t.cluster.name] = await stack.enter_async_context(client)
            old = await _image(self.apis[first.cluster.name], first.app.destination.namespace)
            if old is None:
                raise DemoError(f"no Deployment {IMAGE} on {first.cluster.name} after converging")
            new = f"{old.rpartition(':')[0]}:{NEW_TAG}"
            scene.say(f"CI's step: set image {IMAGE}={new} in {' and '.join(scene.paths)}, push")
            sha = await self.set_image(new)
            took = await self.reach(new, sha)
            summary.append(f"commit {sha[:7]} ({new}) on every cluster within {took:.1f} s")
            undo = await self.rollback(sha, config_path)
            took = await self.reach(old, undo)
            summary.append(f"revert {undo[:7]} ({old}) on every cluster within {took:.1f} s")
        return summary

    async def converge(self, revision: str, title: str) -> float:
        """Print the matrix as it changes until every target is Synced/Healthy at `revision`."""
        began, last, board = time.monotonic(), "", self.hub.board
        wanted = {(t.app.name, t.cluster.name) for t in self.scene.targets}
        with anyio.move_on_after(self.scene.timeout):
            while True:
                text = matrix(board.cells.values(), board.clusters.values())
                if text != last:
                    self.scene.say(f"{title}:\n    " + text.replace("\n", "\n    "))
                    last = text
                done = {
                    (c.app, c.cluster)
                    for c in board.cells.values()
                    if (c.sync, c.health, c.revision) == ("Synced", "Healthy", revision)
                }
                if wanted <= done:
                    return time.monotonic() - began
                await anyio.sleep(0.5)
        raise DemoError(f"{title}: not converged after {self.scene.timeout:.0f} s")

    async def pushed(self, sha: str) -> None:
        self.scene.say(f"pushed {sha[:12]} to {self.url}; telling the hub (as a webhook would)")
        await self.hub.on_push(
            Push(provider="demo", urls=(self.url,), ref="refs/heads/main", after=sha)
        )

    async def reach(self, want: str, sha: str) -> float:
        """Read every cluster's Deployment until its image is `want`; once the hub shows `sha`
        converged, print when each cluster got it, by the demo's clock and by the hub's record."""
        pushed, seen = time.monotonic(), dict[str, float]()

        async def watch(target: Target) -> None:
            api, namespace = self.apis[target.cluster.name], target.app.destination.namespace
            while True:  # polled: this reader is independent of the hub, by design
                if await _image(api, namespace) == want:
                    break
                await anyio.sleep(0.2)
            seen[target.cluster.name] = time.monotonic() - pushed

        with anyio.move_on_after(self.scene.timeout):
            async with anyio.create_task_group() as group:
                for target in self.scene.targets:
                    group.start_soon(watch, target)
        missing = sorted({t.cluster.name for t in self.scene.targets} - set(seen))
        if missing:
            raise DemoError(
                f"{want} did not reach {', '.join(missing)} in {self.scene.timeout:.0f} s"
            )
        await self.converge(sha, f"status at {sha[:7]}")  # the hub's records are written by now
        for t in self.scene.targets:
            rows = await self.hub.history.aquery(app=t.app.name, cluster=t.cluster.name, limit=20)
            hub_says = next((r.commit_to_applied for r in rows if r.revision == sha), None)
            self.scene.say(
                f"  {t.cluster.name:<10} {t.env:<8} {want} @{sha[:7]}: read from the cluster "
                f"{seen[t.cluster.name]:.1f} s after the push; hub's commit-to-applied "
                + ("-" if hub_says is None else f"{hub_says:.1f} s")
            )
        return max(seen.values())

    async def set_image(self, ref: str) -> str:
        """CI's step as `fleet image set IMAGE=REF --push` does it, in every overlay at once."""
        change, paths = images.parse(f"{IMAGE}={ref}"), self.scene.paths
        async with workspace.open_workspace(str(self.scene.work)) as ws:
            await ws.require_clean()

            async def edit() -> str | None:
                edits: list[kustomization.ImageEdit] = []
                for path in paths:
                    file, made = kustomization.set_images(ws.root / path, [change])
                    await ws.git.run("add", "--", str(file.relative_to(ws.root)))
                    edits = edits or made
                subject = f"fleet: set image {IMAGE} to {ref} in {' and '.join(paths)}"
                return bump.commit_message(edits, path=", ".join(paths), source="", subject=subject)

            published = await publish(ws, edit, push=True)
        if published.commit is None:
            raise DemoError(f"image set: the overlays already use {ref}")
        await self.pushed(published.commit)
        return published.commit

    async def rollback(self, sha: str, config_path: Path) -> str:
        """`fleet rollback APP --commit SHA` (prod's app when there is a prod cluster)."""
        app = self.scene.targets[-1].app.name
        target = revert.app_target(config_path, app)
        request = revert.RollbackRequest(commit=sha)
        published = await revert.rollback(target, request, repo=str(self.scene.work), push=True)
        if published.commit is None:
            raise DemoError(f"rollback of {sha[:12]}: nothing to revert")
        self.scene.say(f"fleet rollback {app} --commit {sha[:12]}: a revert commit")
        await self.pushed(published.commit)
        return published.commit


async def _image(api: Any, namespace: str) -> str | None:
    try:
        found = await kube_client.AppsV1Api(api).read_namespaced_deployment(IMAGE, namespace)
    except kube_client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(found.spec.template.spec.containers[0].image)


# -- wiring: the kit around the hub around the story --------------------------------------------


def _hub_settings(root: Path, listen: str) -> HubSettings:
    host, _, port = listen.rpartition(":")
    return HubSettings(
        config_path=root / "fleet.yaml",
        clusters_dir=root / "clusters",
        state_dir=root / "state",
        cache_dir=root / "cache",
        server=ServerSettings(host=host or "127.0.0.1", port=int(port)),
        poll_interval=30.0,  # the demo tells the hub of its pushes; polling is the safety net
        registry_rescan=1.0,
        config_check_interval=1.0,
        drain_timeout=10.0,
    )


async def _run_hub(scene: Scene, settings: HubSettings, *, seed: str, keep: bool) -> bool:
    """Hub and story until done (and Ctrl-C with `keep`); false when a signal cut it short."""
    hub, finished = Hub(settings), False
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as group:
            port = await group.start(hub.run)
            url = f"http://{settings.server.host}:{port}"
            scene.say(f"hub listening on {url}")
            try:
                async with anyio.create_task_group() as story:

                    async def on_signal() -> None:
                        async for _ in signals:
                            scene.say("signal received: stopping the hub")
                            story.cancel_scope.cancel()
                            return

                    story.start_soon(on_signal)
                    for line in await _Story(scene, hub).run(seed, settings.config_path):
                        scene.say(f"summary: {line}")
                    finished = True
                    if keep:
                        scene.say(f"--keep: try `fleet status --url {url}`; Ctrl-C stops it all")
                        await anyio.sleep_forever()
                    story.cancel_scope.cancel()
            finally:
                hub.stop()
    return finished


def _scenario(args: argparse.Namespace, scene: Scene) -> int:
    demorepo.prepare(scene.root)
    settings = _hub_settings(scene.root, args.listen)
    scene.say(f"config repo {scene.bare} (work tree {scene.work}) seeded from {demorepo.EXAMPLE}")
    seed = demorepo.seed(root=scene.root, bare=scene.bare, work=scene.work)
    config = demorepo.write_config(bare=scene.bare, path=settings.config_path)
    apps = ", ".join(f"{a.name} -> {a.source.path}" for a in config.apps)
    scene.say(f"seed commit {seed[:12]}; apps in {settings.config_path}: {apps}")
    labels = demorepo.labels(args.clusters)
    names = ", ".join(f"{name} (env={label['env']})" for name, label in labels.items())
    kit = LocalProvider(
        kubeconfig_dir=settings.clusters_dir, progress=lambda line: scene.say(f"  kit: {line}")
    )
    scene.say(f"starting {len(labels)} local clusters ({kit.kit_id}): {names}")
    with kit:
        with _ticking(scene, "building or starting the clusters"):
            scene.targets = _targets(config, kit.up(list(labels), labels=labels))
        finished = anyio.run(lambda: _run_hub(scene, settings, seed=seed, keep=args.keep))
        if finished and not args.keep:
            argv = ["history", "--state-dir", str(settings.state_dir), "--repo", str(scene.bare)]
            scene.say(f"the audit trail: fleet {' '.join(argv)}")
            parser = argparse.ArgumentParser(prog="fleet")
            hubcmd.add_arguments(parser.add_subparsers(dest="command"))
            hubcmd.run_history(parser.parse_args([*argv, "--limit", str(3 * len(scene.targets))]))
        scene.say("stopping the clusters")
    scene.say("done: hub and clusters stopped" if finished else "interrupted: everything stopped")
    return 0 if finished else 130


def _fleet_error(exc: BaseException) -> FleetError | None:
    if isinstance(exc, BaseExceptionGroup):
        return next(filter(None, map(_fleet_error, exc.exceptions)), None)
    return exc if isinstance(exc, FleetError) else None


def run(args: argparse.Namespace) -> int:
    """``fleet demo``: 0 when every step worked, 1 with one ``error:`` line, 130 on Ctrl-C."""
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not 1 <= args.clusters <= 16:
        print(f"error: --clusters {args.clusters}: pick 1 to 16", file=sys.stderr)
        return 1
    scene = Scene(root=args.dir.resolve(), timeout=args.timeout)
    try:
        return _scenario(args, scene)
    except KeyboardInterrupt:
        scene.say("interrupted: the hub and the clusters are stopped")
        return 130
    except BaseException as exc:
        found = _fleet_error(exc)
        if found is None:
            raise
        print(f"error: {found}", file=sys.stderr, flush=True)
        return 1
