"""``fleet run`` (the hub), and the commands that read a running hub: ``status``, ``history``.

``fleet run`` runs until SIGTERM or Ctrl-C, then lets in-flight applies finish (bounded) and
exits 0. Webhook secrets come from the environment (``FLEET_GITHUB_SECRET``,
``FLEET_GITLAB_TOKEN``), never from the command line, where any user could read them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio

from fleet.config import loading as config_loading
from fleet.errors import FleetError
from fleet.gitops import audit
from fleet.hub.hub import Hub
from fleet.hub.server import ServerSettings
from fleet.hub.settings import HubSettings
from fleet.report import Cell, ClusterState, History, SyncRecord, matrix
from fleet.settings import default_cache_dir
from fleet.sources import Sources, SourceSettings, repo_id

__all__ = ["add_arguments", "run_history", "run_hub", "run_status"]


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the hub: keep every app on every cluster in sync")
    run.add_argument(
        "--config",
        type=Path,
        default=Path("fleet.yaml"),
        help="fleet.yaml, or a directory of app files (default fleet.yaml)",
    )
    run.add_argument(
        "--clusters",
        type=Path,
        default=Path("clusters"),
        help="the directory of drop-in kubeconfigs (default clusters/)",
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".fleet"),
        help="where the sync history lives (default .fleet/)",
    )
    run.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT of the HTTP server")
    run.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        help="seconds between polls of each repository (default 60)",
    )
    run.add_argument("--resync-interval", type=float, default=300.0)
    run.add_argument("--workers", type=int, default=32)
    run.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="git credentials file (https tokens, ssh deploy keys)",
    )
    run.add_argument("--log-level", default="INFO")

    status = sub.add_parser("status", help="the app x cluster matrix of a running hub")
    status.add_argument("--url", default="http://127.0.0.1:8080", help="the hub's address")
    status.add_argument("--json", action="store_true", help="print the JSON status")

    history = sub.add_parser("history", help="which commit reached which cluster, when")
    history.add_argument("app", nargs="?", default=None)
    history.add_argument("--cluster", default=None)
    history.add_argument("--state-dir", type=Path, default=Path(".fleet"))
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--json", action="store_true")
    history.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="config repo (clone or bare) for git log (default: the app's local repoURL or "
        "the hub's mirror; without one, records only)",
    )
    history.add_argument("--config", type=Path, default=Path("fleet.yaml"), help="the apps")
    history.add_argument(
        "--cache-dir", type=Path, default=None, help="the hub's cache dir (its git mirrors)"
    )


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def run_hub(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    host, port = _listen(args.listen)
    settings = HubSettings(
        config_path=args.config,
        clusters_dir=args.clusters,
        state_dir=args.state_dir,
        credentials_file=args.credentials,
        poll_interval=args.poll_interval,
        resync_interval=args.resync_interval,
        server=ServerSettings(
            host=host,
            port=port,
            github_secret=os.environ.get("FLEET_GITHUB_SECRET", ""),
            gitlab_token=os.environ.get("FLEET_GITLAB_TOKEN", ""),
        ),
    )

    async def main() -> None:
        hub = Hub(settings)  # its clock reads the event loop's time: built inside the loop
        async with anyio.create_task_group() as group:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                port = await group.start(hub.run)
                print(f"fleet hub listening on http://{host}:{port}", file=sys.stderr, flush=True)
                async for _ in signals:
                    hub.stop()
                    break

    anyio.run(main)
    return 0


def _get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - operator's URL
            data: dict[str, Any] = json.load(response)
            return data
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"error: cannot reach the hub at {url}: {exc}") from None


def run_status(args: argparse.Namespace) -> int:
    data = _get(args.url.rstrip("/") + "/api/status")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    cells = [Cell(**{k: v for k, v in c.items() if k != "drift_age"}) for c in data["apps"]]
    clusters = [ClusterState(**c) for c in data["clusters"]]
    if data.get("config_error"):
        print(f"! config: {data['config_error']}")
    print(matrix(cells, clusters) if cells or clusters else "no apps or clusters yet")
    return 0


def run_history(args: argparse.Namespace) -> int:
    """The hub's records, joined with git log (sha, author, subject) when the repo is at hand."""
    path = args.state_dir / "history.sqlite"
    if not path.exists():
        print(
            f"error: no history at {path} (has `fleet run` run with --state-dir {args.state_dir}?)",
            file=sys.stderr,
        )
        return 1
    history = History(path)
    records = history.query(app=args.app, cluster=args.cluster, limit=args.limit)
    history.close()
    repos = _history_repos(args, {r.app for r in records})
    if not repos:
        _print_records(records, as_json=args.json)
        return 0
    entries = anyio.run(_joined, records, repos)
    if args.json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
        return 0
    print(
        f"{'applied (UTC)':<19}  {'sha':<10} {'cluster':<16} {'result':<7} "
        f"{'commit->applied':>15}  app: subject (author)"
    )
    for e in entries:
        took = f"{e.commit_to_applied:.1f} s" if e.commit_to_applied is not None else "-"
        said = f"{e.commit.subject[:70]} ({e.commit.author})" if e.commit else "(not in the repo)"
        print(
            f"{_when(e.applied_at)}  {e.revision[:10]:<10} {e.cluster:<16} {e.result:<7} "
            f"{took:>15}  {e.app}: {said}"
        )
    return 0


def _print_records(records: list[SyncRecord], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.__dict__ for r in records], indent=2))
        return
    for r in records:
        latency = r.commit_to_applied
        took = f"{latency:7.1f}s" if latency is not None else "      -"
        print(
            f"{_when(r.finished_at)}  {r.app:<16} {r.cluster:<16} {r.revision[:10]:<10} "
            f"{r.result:<7} {took}  +{r.created} ~{r.configured} -{r.pruned} !{r.failed} "
            f"{r.error[:60]}"
        )


def _history_repos(args: argparse.Namespace, apps: set[str]) -> dict[str, Path]:
    """Where to read git log for each app: --repo, else its repoURL when a local directory, else
    the hub's bare mirror of it under the cache dir. Apps with none are left out."""
    if args.repo is not None:
        return dict.fromkeys(apps, args.repo)
    try:
        config = config_loading.load(args.config)
    except (FleetError, OSError):
        return {}
    settings = SourceSettings(cache_dir=args.cache_dir or default_cache_dir())
    found: dict[str, Path] = {}
    for app in config.apps:
        if app.name not in apps:
            continue
        repo = repo_id(app.source.repo_url)
        local = Path(unquote(urlsplit(repo.fetch_url).path))
        if repo.scheme == "file" and local.is_dir():
            found[app.name] = local
        elif settings.git_dir.is_dir():  # a hub has run: no file is written by looking
            mirror = Sources(settings).mirror(app.source.repo_url).path
            if (mirror / "HEAD").exists():
                found[app.name] = mirror
    return found


async def _joined(records: list[SyncRecord], repos: dict[str, Path]) -> list[audit.HistoryEntry]:
    """:func:`fleet.gitops.audit.history` per repository, back in the records' order."""
    joined: dict[int, audit.HistoryEntry] = {}
    for repo in set(repos.values()):
        picked = [i for i, r in enumerate(records) if repos.get(r.app) == repo]
        try:
            entries = await audit.history([records[i] for i in picked], repo)
        except FleetError:
            entries = audit.join([records[i] for i in picked], {})
        joined.update(zip(picked, entries, strict=True))
    rest = [i for i in range(len(records)) if i not in joined]
    joined.update(zip(rest, audit.join([records[i] for i in rest], {}), strict=True))
    return [joined[i] for i in range(len(records))]


def _when(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
