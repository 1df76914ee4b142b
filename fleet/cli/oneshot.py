"""One-shot commands without the hub: ``fleet render``, ``fleet diff``, ``fleet sync``.

They use the same pipeline as the hub (shared mirrors and render cache under the cache
directory), so what ``render`` prints is what the hub applies, and ``diff`` is exactly the
server-side dry-run of the next sync. ``sync --dry-run`` is that same diff told in the words of a
sync (created, configured, pruned), so the two commands can never disagree; a prune over the app's
``pruneLimit`` needs ``--consent``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import anyio
import yaml

from fleet import apply
from fleet.cache import CacheSettings, ManifestCache
from fleet.config import App, Config, loading
from fleet.config import clusters as cluster_files
from fleet.errors import FleetError
from fleet.hub import apps
from fleet.reconcile import diffing, syncing
from fleet.reconcile.desired import Desired, DesiredState
from fleet.render import Renderer, RenderSettings
from fleet.settings import default_cache_dir
from fleet.sources import Sources, SourceSettings
from fleet.types import ClusterRef, ObjectKey

__all__ = ["add_arguments", "run"]


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, text in (
        ("render", "print the manifests an app renders to, for one cluster"),
        ("diff", "show what a sync would change on a cluster (server-side dry-run)"),
        ("sync", "apply an app to its clusters once, without the hub"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("app", help="the app's name in the config")
        parser.add_argument("--cluster", default=None, help="one cluster (default: all targets)")
        parser.add_argument(
            "--config",
            type=Path,
            default=Path("fleet.yaml"),
            help="the apps: a fleet.yaml file or a directory of them (default fleet.yaml)",
        )
        parser.add_argument(
            "--clusters",
            type=Path,
            default=Path("clusters"),
            help="the directory of cluster kubeconfigs (default clusters/)",
        )
        if name == "sync":
            parser.add_argument("--dry-run", action="store_true", help="plan and print only")
            parser.add_argument(
                "--consent",
                "--prune",
                action="store_true",
                help="allow a prune larger than the app's pruneLimit (through a hub: prune)",
            )
            parser.add_argument(
                "--url",
                default=None,
                help="sync through this running hub instead of once from here (default: from here)",
            )


def _pipeline() -> DesiredState:
    cache = default_cache_dir()
    return DesiredState(
        sources=Sources(SourceSettings(cache_dir=cache, interval=0)),
        renderer=Renderer(RenderSettings()),
        cache=ManifestCache(CacheSettings(root=cache / "render")),
    )


def _targets(app: App, directory: Path, only: str | None) -> list[cluster_files.ClusterFile]:
    found = []
    for path in sorted(directory.glob("*")):
        if not cluster_files.is_cluster_file(path):
            continue
        file = cluster_files.read(path)
        if only and file.ref.name != only:
            continue
        if only or app.destination.clusters.matches(file.ref, server=file.server):
            found.append(file)
    if only and not found:
        raise FleetError(f"no cluster {only!r} in {directory}")
    return found


def _desired_or_raise(desired: Desired) -> Desired:
    if desired.error is not None:
        raise desired.error
    return desired


async def _render(app: App, args: argparse.Namespace) -> int:
    if args.cluster:
        ref = _targets(app, args.clusters, args.cluster)[0].ref
    else:
        ref = ClusterRef(name="-")  # an app without per-cluster inputs renders the same anywhere
    desired = _desired_or_raise(await _pipeline().desired(apps.app_source(app), ref))
    assert desired.rendered is not None
    rendered = apps.with_namespace(app, ref, desired.rendered)
    print(f"# app {app.name} cluster {ref.name} commit {desired.commit} {rendered.digest}")
    yaml.safe_dump_all(list(rendered.objects), sys.stdout, sort_keys=False)
    return 0


async def _per_cluster(app: App, args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    targets = _targets(app, args.clusters, args.cluster)
    if not targets:
        raise FleetError(f"app {app.name} selects no cluster in {args.clusters}")
    status = 0
    for file in targets:
        desired = _desired_or_raise(await pipeline.desired(apps.app_source(app), file.ref))
        assert desired.rendered is not None and desired.commit is not None
        rendered = apps.with_namespace(app, file.ref, desired.rendered)
        async with apply.connect(file.path, name=file.ref.name) as cluster:
            if args.command == "diff" or args.dry_run:
                diffs, prunes = await diffing.diff(cluster, apps.app_sync(app, file.ref), rendered)
                show = _print_diff if args.command == "diff" else _print_dry_run
                ok = show(file.ref.name, desired.commit, diffs, prunes)
            else:
                result = await syncing.sync(
                    cluster,
                    apps.app_sync(app, file.ref, consent=args.consent),
                    rendered,
                    revision=desired.commit,
                )
                ok = _print_sync(file.ref.name, desired.commit, result)
        status = status if ok else 1
    return status


def _print_diff(
    cluster: str, commit: str, diffs: list[apply.ObjectDiff], prunes: list[ObjectKey]
) -> bool:
    print(f"=== cluster {cluster} @ {commit[:12]}")
    for item in diffs:
        if item.action != apply.DiffAction.NONE:
            print(f"--- {item.key}: {item.action}")
            if item.text:
                print(item.text)
    for key in prunes:
        print(f"--- {key}: prune")
    return True


def _print_sync(cluster: str, commit: str, result: syncing.SyncResult) -> bool:
    print(
        f"{cluster}: applied {commit[:12]}: {_said(result.changes.counts())}; "
        f"health {result.health.status.value}"
    )
    for change in result.changes.changes:
        if change.outcome is not apply.Outcome.UNCHANGED:
            reason = f" ({change.reason})" if change.reason else ""
            print(f"  {change.key}: {change.outcome}{reason}")
    if result.plan.refused:
        print(f"  prune refused: {result.plan.refused}")
    return result.changes.ok


_ORDER = ("created", "configured", "pruned", "unchanged")


def _said(counts: Mapping[str, int]) -> str:
    """``created 1, configured 2, pruned 1``: changes first, in the order a sync makes them."""
    rank = {outcome: index for index, outcome in enumerate(_ORDER)}
    ordered = sorted((o for o, n in counts.items() if n), key=lambda o: (rank.get(o, 99), o))
    return ", ".join(f"{o} {counts[o]}" for o in ordered) or "nothing"


_WOULD = {
    apply.DiffAction.CREATE: "created",
    apply.DiffAction.UPDATE: "configured",
    apply.DiffAction.NONE: "unchanged",
    apply.DiffAction.ERROR: "failed",
}


def _print_dry_run(
    cluster: str, commit: str, diffs: list[apply.ObjectDiff], prunes: list[ObjectKey]
) -> bool:
    """What a sync would do, in the words of a sync, from the very diff ``fleet diff`` shows (one
    truth for both commands); False when an object could not be diffed."""
    outcomes = [(d.key, _WOULD[d.action], d.text) for d in diffs]
    outcomes += [(key, "pruned", "") for key in prunes]
    counts = Counter(outcome for _, outcome, _ in outcomes)
    print(f"{cluster}: would apply {commit[:12]}: {_said(counts)}")
    for key, outcome, text in outcomes:
        if outcome != "unchanged":
            print(f"  {key}: {outcome}" + (f" ({text})" if outcome == "failed" and text else ""))
    return not counts["failed"]


def run(args: argparse.Namespace) -> int:
    try:
        config: Config = loading.load(args.config)
        app = config.app(args.app)
        if app is None:
            raise FleetError(f"{args.config}: no app named {args.app!r}")
        command = _render if args.command == "render" else _per_cluster
        return anyio.run(command, app, args)
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
