"""``fleet run`` (the hub), and the commands that read a running hub: ``status``, ``history``.

``fleet run`` runs until SIGTERM or Ctrl-C, then lets in-flight applies finish (bounded) and
exits 0. Webhook secrets come from the environment (``FLEET_GITHUB_SECRET``,
``FLEET_GITLAB_TOKEN``), never from the command line, where any user could read them; they are
registered with :mod:`fleet.logs` so that no log line shows them. Its log is one event per line on
stderr (logfmt, or JSON with ``--log-format json``); the start line (version, config, clusters
dir, listen address), the listening line (``banner="fleet hub listening on URL" url=URL``, the
words and the port at the end that scripts wait for) and the stop line (reason, seconds up) are
written whatever ``--log-level`` says.

``fleet status`` prints the matrix and exits 0 only when every target is Synced/Healthy, every
cluster ready and the config valid; 1 otherwise, 2 for a usage error, 3 when the hub cannot be
reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio

from fleet import __version__, logs
from fleet.config import loading as config_loading
from fleet.errors import FleetError
from fleet.gitops import audit
from fleet.hub import gitconfig, server
from fleet.hub.hub import Hub
from fleet.hub.server import ServerSettings
from fleet.hub.settings import HubSettings
from fleet.report import Cell, ClusterState, SyncRecord, matrix, open_to_read
from fleet.runtime import SchedulerSettings, collector
from fleet.settings import default_cache_dir
from fleet.shard import options as shard_options
from fleet.sources import Sources, SourceSettings, repo_id

__all__ = [
    "EXIT_NOT_GREEN",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "add_arguments",
    "not_green",
    "run_history",
    "run_hub",
    "run_status",
]

log = logging.getLogger(__name__)

EXIT_NOT_GREEN = 1  # a target not Synced/Healthy, a cluster not ready, a config error
EXIT_USAGE = 2  # as argparse
EXIT_UNREACHABLE = 3  # the hub did not answer with its status
_HISTORY_HELP = (
    "a postgresql://user@host:port/db URL: history and events in that database, shared by hub "
    "replicas (default: history.sqlite in --state-dir); give the password through PGPASSWORD or "
    "a passfile (~/.pgpass), not in the URL"
)
_STATUS_EXITS = (
    "exit status: 0 when every target is Synced/Healthy, every cluster ready and the config "
    "valid; 1 otherwise; 2 for a usage error; 3 when the hub cannot be reached"
)


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the hub: keep every app on every cluster in sync")
    run.add_argument(
        "--config", default="fleet.yaml", metavar="PATH|REPO#REF:PATH", help=gitconfig.LOCATION_HELP
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
    run.add_argument("--history", default="", metavar="URL", help=_HISTORY_HELP)
    run.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="HOST:PORT of the HTTP server (default 127.0.0.1:8080; beyond loopback it needs "
        "--api-tokens)",
    )
    run.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        help="seconds between polls of each repository (default 60)",
    )
    run.add_argument(
        "--resync-interval",
        type=float,
        default=300.0,
        help="seconds between full checks of each target; answered from the clusters' live "
        "caches while they are warm (default 300)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=32,
        help="reconciles running at once, fleet-wide (at most 4 per cluster; default 32)",
    )
    run.add_argument(
        "--api-tokens",
        type=Path,
        default=None,
        metavar="FILE",
        help="bearer tokens for the API and the page: YAML or `token, role[, name]` lines, roles "
        "read/admin, re-read when it changes (default: none, and then only a loopback --listen)",
    )
    run.add_argument(
        "--insecure-open-api",
        action="store_true",
        help="serve the API without tokens on a non-loopback --listen (only behind a proxy that "
        "authenticates)",
    )
    run.add_argument(
        "--metrics-auth",
        action="store_true",
        help="/metrics needs a read token (default: open, as Prometheus expects)",
    )
    run.add_argument(
        "--tls-cert", type=Path, default=None, help="PEM certificate chain: serve HTTPS"
    )
    run.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    run.add_argument(
        "--hub-id",
        default="fleet",
        help="this hub's name in every object's tracking id (default fleet): two hubs with "
        "different ids never take each other's objects",
    )
    shard_options.add_arguments(run)
    run.add_argument(
        "--in-cluster",
        action="store_true",
        help="offer the cluster fleet runs in (its Pod's ServiceAccount) as the destination "
        "cluster named in-cluster, Argo CD's https://kubernetes.default.svc (default: off)",
    )
    run.add_argument(
        "--helm",
        type=Path,
        default=None,
        help="the helm binary for charts (default: helm on PATH, else the one the kit built)",
    )
    run.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="git credentials file (https tokens, ssh deploy keys)",
    )
    run.add_argument(
        "--log-level",
        default="info",
        help=f"least severe level logged: {', '.join(logs.LEVELS)} (default info)",
    )
    run.add_argument(
        "--log-format",
        default=logs.Format.LOGFMT.value,
        help="logfmt (key=value, one event per line) or json (one object per line); default logfmt",
    )

    status = sub.add_parser(
        "status", help="the app x cluster matrix of a running hub", epilog=_STATUS_EXITS
    )
    status.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="the hub's address (default http://127.0.0.1:8080)",
    )
    status.add_argument("--json", action="store_true", help="print the JSON status")

    history = sub.add_parser("history", help="which commit reached which cluster, when")
    history.add_argument("app", nargs="?", default=None, help="one app (default: every app)")
    history.add_argument("--cluster", default=None, help="one cluster (default: every cluster)")
    history.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".fleet"),
        help="the hub's state directory, where history.sqlite is (default .fleet/)",
    )
    history.add_argument("--history", default="", metavar="URL", help=_HISTORY_HELP)
    history.add_argument(
        "--limit", type=int, default=50, help="at most this many records, newest first (default 50)"
    )
    history.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    history.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="config repo (clone or bare) for git log (default: the app's local repoURL or "
        "the hub's mirror; without one, records only)",
    )
    history.add_argument(
        "--config",
        type=Path,
        default=Path("fleet.yaml"),
        help="the apps, to find an app's repository (default fleet.yaml)",
    )
    history.add_argument(
        "--cache-dir", type=Path, default=None, help="the hub's cache dir (its git mirrors)"
    )


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {value}: expected HOST:PORT with a port from 0 to 65535")
    return host or "127.0.0.1", int(port)


def _log_options(args: argparse.Namespace) -> tuple[int, logs.Format]:
    level = logs.parse_level(args.log_level)
    try:
        fmt = logs.Format(str(args.log_format).lower())
    except ValueError:
        choices = ", ".join(f.value for f in logs.Format)
        raise ValueError(f"log format '{args.log_format}' is not one of {choices}") from None
    return level, fmt


def _check_positive(args: argparse.Namespace) -> None:
    for option, value in (
        ("--poll-interval", args.poll_interval),
        ("--resync-interval", args.resync_interval),
        ("--workers", args.workers),
    ):
        if not value > 0:
            raise ValueError(f"{option} {value:g}: must be greater than 0")


def _default_helm() -> Path | None:
    """helm on PATH, else the one the control-plane kit built into the cache (if any)."""
    if shutil.which("helm"):
        return None
    built = sorted((default_cache_dir() / "controlplane" / "bin").glob("helm-*/helm"))
    return built[-1] if built else None


def run_hub(args: argparse.Namespace) -> int:
    try:
        level, fmt = _log_options(args)
        host, port = _listen(args.listen)
        _check_positive(args)
        if not args.hub_id or "/" in args.hub_id:
            raise ValueError(f"--hub-id {args.hub_id!r}: must be non-empty, without '/'")
        shard = shard_options.settings(args)
        in_git = gitconfig.parse_location(args.config) is not None
    except (ValueError, FleetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(level=level, fmt=fmt)
    github_secret = os.environ.get("FLEET_GITHUB_SECRET", "")
    gitlab_token = os.environ.get("FLEET_GITLAB_TOKEN", "")
    for secret in (github_secret, gitlab_token):
        logs.register_secret(secret)
    settings = HubSettings(
        config_path=Path("fleet.yaml" if in_git else args.config),
        config_source=args.config if in_git else "",
        clusters_dir=args.clusters,
        state_dir=args.state_dir,
        history=args.history,
        credentials_file=args.credentials,
        poll_interval=args.poll_interval,
        resync_interval=args.resync_interval,
        hub_id=args.hub_id,
        helm=args.helm or _default_helm(),
        shard=shard,
        in_cluster=args.in_cluster,
        scheduler=SchedulerSettings(workers=args.workers),
        server=ServerSettings(
            host=host,
            port=port,
            github_secret=github_secret,
            gitlab_token=gitlab_token,
            api_tokens=args.api_tokens,
            insecure_open_api=args.insecure_open_api,
            metrics_open=not args.metrics_auth,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        ),
    )
    try:
        server.check(settings.server)
    except FleetError as exc:
        print(f"error: {logs.scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    logs.announce(
        log,
        "hub_start",
        version=__version__,
        config=logs.scrub(args.config),
        clusters=args.clusters,
        state_dir=args.state_dir,
        listen=f"{host}:{port}",
        credentials=args.credentials or "",
        log_format=fmt.value,
        pid=os.getpid(),
    )
    started = time.monotonic()
    stopped_by: list[str] = []
    collector.tune()

    async def main() -> None:
        hub = Hub(settings)  # its clock reads the event loop's time: built inside the loop

        def listening(port: int) -> None:  # before the cluster files are read
            url = f"http://{host}:{port}"
            # scripts wait for "listening on URL" and read the port at the end of the line
            logs.announce(log, "hub_listening", banner=f"fleet hub listening on {url}", url=url)

        async with anyio.create_task_group() as group:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                await group.start(functools.partial(hub.run, on_listening=listening))
                frozen = collector.settle()  # ready: the start-up heap, walked no more
                log.debug("event=gc_frozen objects=%d", frozen)
                async for signum in signals:
                    stopped_by.append(signal.Signals(signum).name)
                    hub.stop()
                    break

    try:
        anyio.run(main)
    except Exception as exc:  # the hub's end, whatever ended it, is one stop line
        _stopped(started, reason="error", error=exc, bug=not _expected(exc))
        return 1
    _stopped(started, reason=stopped_by[0] if stopped_by else "returned")
    return 0


def _expected(exc: BaseException) -> bool:
    """An operator's error (a port in use, a bad file), not a bug of fleet."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_expected(e) for e in exc.exceptions)
    return isinstance(exc, FleetError | OSError)


def _stopped(
    started: float, *, reason: str, error: BaseException | None = None, bug: bool = False
) -> None:
    fields: dict[str, object] = {"reason": reason, "uptime_s": round(time.monotonic() - started, 3)}
    if error is not None:
        fields["error"] = error
    if bug:  # a traceback, scrubbed, on the same line: a bug of fleet to report
        logs.event(log, "hub_crashed", level=logging.ERROR, exc_info=error)
    logs.announce(log, "hub_stop", **fields)


class _Unreachable(Exception):
    """The hub did not answer with its status."""


def _get(url: str) -> dict[str, Any]:
    try:
        token = os.environ.get("FLEET_API_TOKEN", "").strip()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - operator's URL
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        raise _Unreachable(f"the hub at {url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        cause = getattr(exc, "reason", exc)
        raise _Unreachable(f"cannot reach the hub at {url}: {logs.scrub(str(cause))}") from None
    except ValueError:
        raise _Unreachable(f"{url} did not answer with the hub's status JSON") from None
    if not isinstance(data, dict):
        raise _Unreachable(f"{url} did not answer with the hub's status JSON")
    return data


def _green(cell: dict[str, Any]) -> bool:
    """A target's own verdict (``ready``), or Synced/Healthy from a hub that does not give one."""
    if "ready" in cell:
        return bool(cell["ready"])
    return (cell.get("sync"), cell.get("health")) == ("Synced", "Healthy")


def not_green(data: dict[str, Any]) -> list[str]:
    """What keeps `data` (``/api/status``) from all green, one short phrase each; [] when green."""
    found = []
    if data.get("config_error"):
        found.append("the config has an error")
    cells = [c for c in data.get("apps", []) if isinstance(c, dict)]
    bad = [c for c in cells if not _green(c)]
    if bad:
        found.append(f"{len(bad)} of {len(cells)} targets not ready (Synced/Healthy on the "
                     "desired commit, not suspended)")  # fmt: skip
    clusters = [c for c in data.get("clusters", []) if isinstance(c, dict)]
    down = [str(c.get("name")) for c in clusters if c.get("state") != "ready"]
    if down:
        found.append(f"clusters not ready: {', '.join(down)}")
    found += [str(p) for p in data.get("problems") or []]  # the hub's own (a history outage)
    return found


def run_status(args: argparse.Namespace) -> int:
    base = str(args.url).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        print(f"error: --url {base}: expected http(s)://HOST:PORT", file=sys.stderr)
        return EXIT_USAGE
    try:
        data = _get(base + "/api/status")
    except _Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    problems = not_green(data)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_matrix(data)
    if problems:
        print(f"not green: {'; '.join(problems)}", file=sys.stderr)
        return EXIT_NOT_GREEN
    return 0


def _print_matrix(data: dict[str, Any]) -> None:
    cell_fields = {f.name for f in dataclasses.fields(Cell)}
    state_fields = {f.name for f in dataclasses.fields(ClusterState)}
    cells = [Cell(**{k: v for k, v in c.items() if k in cell_fields}) for c in data.get("apps", [])]
    clusters = [
        ClusterState(**{k: v for k, v in c.items() if k in state_fields})
        for c in data.get("clusters", [])
    ]
    config = data.get("config")
    if isinstance(config, dict) and config.get("type") == "git":
        commit = str(config.get("commit") or "")[:12] or "(no good commit read yet)"
        where = f"{config.get('repo')}#{config.get('ref')}:{config.get('path')}"
        failed = str(config.get("failed_commit") or "")[:12]
        also = f"; commit {failed} failed, the last good config stays" if failed else ""
        print(f"config: {where} @ {commit}{also}")
    elif isinstance(config, dict) and config.get("type"):
        print(f"config: {config.get('path', '-')}")
    for parent in data.get("parents") or []:
        if isinstance(parent, dict):
            name = parent.get("app") or parent.get("name") or "?"
            count, refused = len(parent.get("names") or []), len(parent.get("refused") or [])
            noun = "child" if count == 1 else "children"
            print(f"parent {name}: {count} {noun} ({refused} refused)")
    if data.get("config_error"):
        print(f"! config: {data['config_error']}")
    for problem in data.get("problems") or []:
        print(f"! {problem}")
    print(matrix(cells, clusters) if cells or clusters else "no apps or clusters yet")


def run_history(args: argparse.Namespace) -> int:
    """The hub's records, joined with git log (sha, author, subject) when the repo is at hand."""
    try:
        history = open_to_read(url=args.history, state_dir=args.state_dir)
        try:
            records = history.query(app=args.app, cluster=args.cluster, limit=args.limit)
        finally:
            history.close()
    except FleetError as exc:
        print(f"error: {logs.scrub(str(exc))}", file=sys.stderr)
        return 1
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
