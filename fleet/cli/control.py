"""The verbs that operate a running hub through its API: get, refresh, suspend, resume, wait, and
``fleet sync --url`` (a sync through the hub).

Each talks to ``--url`` (default ``http://127.0.0.1:8080``) with the API token from
``FLEET_API_TOKEN`` (never a command-line argument, where any user could read it). Exit codes:
0 done, 1 the hub refused or the wait timed out, 2 a usage error, 3 the hub could not be reached.

- ``fleet get APP``: per cluster, sync and health, the applied and the desired commit, the error,
  then the object tree with each object's last result and health;
- ``fleet refresh APP [--cluster C]``: list the app's repository now and check its targets fully;
- ``fleet sync APP --url URL [--cluster C] [--prune]``: sync now through the hub (how an app
  without automated sync is applied);
- ``fleet suspend|resume APP [--cluster C]``, ``fleet suspend|resume --cluster C``;
- ``fleet wait APP [--cluster C] [--health] [--timeout S]``: until every target is Synced (and
  Healthy with ``--health``) on the desired commit.
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
from typing import Any

__all__ = ["COMMANDS", "add_arguments", "run", "sync_through_hub"]

COMMANDS = ("get", "refresh", "suspend", "resume", "wait")
_DEFAULT_URL = "http://127.0.0.1:8080"


class _Failed(Exception):
    """The hub answered with an error, or could not be reached (`code` is the exit code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=_DEFAULT_URL, help=f"the running hub's address (default {_DEFAULT_URL})"
    )


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    get = sub.add_parser("get", help="one app on every cluster: status, commits, object tree")
    get.add_argument("app", help="the app's name")
    get.add_argument("--json", action="store_true", help="print the hub's JSON")
    _url_option(get)
    refresh = sub.add_parser("refresh", help="list an app's repository now and check it fully")
    refresh.add_argument("app", help="the app's name")
    refresh.add_argument("--cluster", default=None, help="one cluster (default: all targets)")
    _url_option(refresh)
    for verb, text in (("suspend", "stop reconciling"), ("resume", "reconcile again")):
        parser = sub.add_parser(verb, help=f"{text}: an app, a cluster, or one app on a cluster")
        parser.add_argument("app", nargs="?", default=None, help="the app (default: all apps)")
        parser.add_argument("--cluster", default=None, help="the cluster (default: all)")
        _url_option(parser)
    wait = sub.add_parser("wait", help="wait until an app is Synced (and Healthy) everywhere")
    wait.add_argument("app", help="the app's name")
    wait.add_argument("--cluster", default=None, help="one cluster (default: all targets)")
    wait.add_argument("--health", action="store_true", help="wait for Healthy too")
    wait.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before giving up (default 300)"
    )
    _url_option(wait)


def _call(url: str, path: str, *, method: str = "GET") -> dict[str, Any]:
    token = os.environ.get("FLEET_API_TOKEN", "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(  # noqa: S310 - the operator's URL
        url.rstrip("/") + path,
        method=method,
        headers=headers,
        data=b"" if method == "POST" else None,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.load(exc).get("error", "")
        except ValueError:
            detail = ""
        raise _Failed(f"the hub answered HTTP {exc.code}: {detail or exc.reason}", 1) from None
    except (urllib.error.URLError, OSError) as exc:
        cause = getattr(exc, "reason", exc)
        raise _Failed(f"cannot reach the hub at {url}: {cause}", 3) from None
    except ValueError:
        raise _Failed(f"{url} did not answer with JSON", 3) from None
    if not isinstance(data, dict):
        raise _Failed(f"{url} did not answer with a JSON object", 3)
    return data


def _where(key: dict[str, Any], data: dict[str, Any], *, app: bool = False) -> str:
    """A target of an answer, with the replica that acted on it when the hub is sharded."""
    text = f"{key['app']}@{key['cluster']}" if app else str(key["cluster"])
    replica = key.get("replica") or data.get("replica")
    return f"{text} (replica {replica})" if replica else text


def _query(**items: str | None) -> str:
    kept = {k: v for k, v in items.items() if v}
    return "?" + urllib.parse.urlencode(kept) if kept else ""


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "get":
            return _get(args)
        if args.command == "refresh":
            app = urllib.parse.quote(args.app, safe="")
            data = _call(args.url, f"/api/apps/{app}/refresh{_query(cluster=args.cluster)}",
                         method="POST")  # fmt: skip
            print(f"refreshed {len(data.get('refreshed', []))} target(s) of {args.app}")
            return 0
        if args.command in ("suspend", "resume"):
            return _suspend(args)
        return _wait(args)
    except _Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code


def sync_through_hub(args: argparse.Namespace) -> int:
    """``fleet sync APP --url URL``: ask the hub to sync now."""
    app = urllib.parse.quote(args.app, safe="")
    query = _query(cluster=args.cluster, prune="true" if args.consent else None)
    try:
        data = _call(args.url, f"/api/apps/{app}/sync{query}", method="POST")
    except _Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    keys = data.get("syncing", [])
    where = ", ".join(_where(k, data) for k in keys)
    print(f"syncing {args.app} on {len(keys)} cluster(s): {where}")
    return 0


def _suspend(args: argparse.Namespace) -> int:
    if args.app is None and args.cluster is None:
        print(f"error: fleet {args.command}: name an app, a --cluster, or both", file=sys.stderr)
        return 2
    if args.app is None:
        cluster = urllib.parse.quote(args.cluster, safe="")
        path = f"/api/clusters/{cluster}/{args.command}"
    else:
        app = urllib.parse.quote(args.app, safe="")
        path = f"/api/apps/{app}/{args.command}{_query(cluster=args.cluster)}"
    data = _call(args.url, path, method="POST")
    done = data.get("suspended" if args.command == "suspend" else "resumed", [])
    print(f"{args.command}d: " + (", ".join(_where(k, data, app=True) for k in done) or "-"))
    return 0


def _get(args: argparse.Namespace) -> int:
    data = _call(args.url, f"/api/apps/{urllib.parse.quote(args.app, safe='')}")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for target in data.get("targets", []):
        mark = "ok" if target.get("ready") else "!!"
        print(
            f"{mark} {_where(target, {})}: {target['sync']}/{target['health']}"
            f"  applied {target.get('applied_commit', '')[:7] or '-'}"
            f"  desired {target.get('desired_commit', '')[:7] or '-'}"
        )
        if target.get("error"):
            print(f"   error: {target['error']}")
        if target.get("note"):
            print(f"   note: {target['note']}")
        for obj in sorted(
            target.get("objects", []), key=lambda o: (o["kind"], o["namespace"], o["name"])
        ):
            kind = f"{obj['kind']}.{obj['group']}" if obj.get("group") else obj["kind"]
            where = f"{obj['namespace']}/" if obj.get("namespace") else ""
            line = f"   {kind} {where}{obj['name']}: {obj['result']}, {obj['health']}"
            print(line + (f" ({obj['message']})" if obj.get("message") else ""))
    if not data.get("targets"):
        print(f"{args.app}: no targets yet")
    return 0


def _wait(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    app = urllib.parse.quote(args.app, safe="")
    while True:
        targets = [
            t
            for t in _call(args.url, f"/api/apps/{app}").get("targets", [])
            if args.cluster is None or t["cluster"] == args.cluster
        ]
        waiting = [t for t in targets if not _done(t, health=args.health)]
        if targets and not waiting:
            print(f"{args.app}: {len(targets)} target(s) " + ("ready" if args.health else "synced"))
            return 0
        if time.monotonic() >= deadline:
            shown = ", ".join(f"{t['cluster']} {t['sync']}/{t['health']}" for t in waiting)
            print(f"error: timed out after {args.timeout:g}s: {shown or 'no targets'}",
                  file=sys.stderr)  # fmt: skip
            return 1
        time.sleep(1.0)


def _done(target: dict[str, Any], *, health: bool) -> bool:
    synced = (
        target.get("sync") == "Synced"
        and bool(target.get("applied_commit"))
        and target.get("applied_commit") == target.get("desired_commit")
    )
    return bool(target.get("ready")) if health else synced
