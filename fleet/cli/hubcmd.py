"""``fleet run`` (the hub), and the commands that read a running hub: ``status``, ``history``.

``fleet run`` runs until SIGTERM or Ctrl-C, then lets in-flight applies finish (bounded) and
exits 0. Webhook secrets come from the environment (``FLEET_GITHUB_SECRET``,
``FLEET_GITLAB_TOKEN``), never from the command line, where any user could read them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio

from fleet.hub.hub import Hub
from fleet.hub.server import ServerSettings
from fleet.hub.settings import HubSettings
from fleet.report import Cell, ClusterState, History, matrix

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
    hub = Hub(settings)

    async def main() -> None:
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
    if args.json:
        print(json.dumps([r.__dict__ for r in records], indent=2))
        return 0
    for r in records:
        latency = r.commit_to_applied
        took = f"{latency:7.1f}s" if latency is not None else "      -"
        print(
            f"{_when(r.finished_at)}  {r.app:<16} {r.cluster:<16} {r.revision[:10]:<10} "
            f"{r.result:<7} {took}  +{r.created} ~{r.configured} -{r.pruned} !{r.failed} "
            f"{r.error[:60]}"
        )
    return 0


def _when(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
