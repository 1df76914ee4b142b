"""``fleet events``: what happened to each target, newest first, from a running hub or its history.

Events are the summary step's record of changes (a commit applied, a sync or render failed, a
cluster stopped answering, health changed, drift, recovery; see
:class:`fleet.report.TargetEvent`). A running hub serves its recent ones at ``/api/events``; every
event also lands in the history database, which ``--state-dir`` (SQLite) or ``--history URL``
(PostgreSQL) reads without a hub (also after it stopped). One line per event: time, severity,
type, app@cluster, commit, message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fleet import logs
from fleet.errors import FleetError
from fleet.report.history import open_to_read

__all__ = ["add_arguments", "run_events"]


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = sub.add_parser(
        "events", help="what happened to each app on each cluster, newest first"
    )
    events.add_argument("app", nargs="?", default=None, help="only this app (default: all)")
    events.add_argument("--cluster", default=None, help="only this cluster (default: all)")
    events.add_argument(
        "--limit", type=_positive, default=50, help="at most this many events (default 50)"
    )
    events.add_argument("--json", action="store_true", help="print JSON instead of lines")
    where = events.add_mutually_exclusive_group()
    where.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="a running hub's address (default http://127.0.0.1:8080)",
    )
    where.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="read the hub's history database in this directory instead of asking the hub",
    )
    where.add_argument(
        "--history",
        default="",
        metavar="URL",
        help="read the hub's postgresql://user@host:port/db history instead of asking the hub "
        "(the password from PGPASSWORD or a passfile, not the URL)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run_events(args: argparse.Namespace) -> int:
    if args.state_dir is not None or args.history:
        rows = _from_history(
            args.history, args.state_dir, app=args.app, cluster=args.cluster, limit=args.limit
        )
        if rows is None:
            return 1
    else:
        try:
            rows = _from_hub(args.url, app=args.app, cluster=args.cluster, limit=args.limit)
        except OSError as exc:
            print(f"error: cannot reach the hub at {args.url}: {exc}", file=sys.stderr)
            return 3
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no events")
    for row in rows:
        print(_line(row))
    return 0


def _from_history(
    url: str, state_dir: Path | None, *, app: str | None, cluster: str | None, limit: int
) -> list[dict[str, Any]] | None:
    try:
        history = open_to_read(url=url, state_dir=state_dir or Path(".fleet"))
        try:
            records = history.events(app=app, cluster=cluster, limit=limit)
        finally:
            history.close()
    except FleetError as exc:
        print(f"error: {logs.scrub(str(exc))}", file=sys.stderr)
        return None
    out = []
    for record in records:
        row = asdict(record)
        row["commit"] = row.pop("commit_sha")
        out.append(row)
    return out


def _from_hub(
    url: str, *, app: str | None, cluster: str | None, limit: int
) -> list[dict[str, Any]]:
    query = {k: v for k, v in {"app": app, "cluster": cluster, "limit": str(limit)}.items() if v}
    target = url.rstrip("/") + "/api/events?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(target, headers=_auth_headers())  # noqa: S310 - operator's
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None
    except ValueError:
        raise OSError("the answer is not the hub's events JSON") from None
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise OSError("the answer is not the hub's events JSON")
    return [e for e in events if isinstance(e, dict)]


def _auth_headers() -> dict[str, str]:
    """The API token from ``FLEET_API_TOKEN``, when the hub asks for one."""
    token = os.environ.get("FLEET_API_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _line(row: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(row.get("time", 0))))
    mark = "!" if row.get("severity") == "warning" else " "
    commit = str(row.get("commit") or "")[:7] or "-"
    where = f"{row.get('app')}@{row.get('cluster')}"
    return (
        f"{when} {mark} {row.get('type', '?'):<14} {where:<30} {commit:<7} {row.get('message', '')}"
    )
