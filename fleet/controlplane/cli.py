"""Command line of the control-plane kit: ``up``, ``down``, ``status``, ``build``.

``python -m fleet.controlplane up -n 3 --dir clusters/`` starts three clusters that keep running
after the command returns (detached) and drops their kubeconfigs into ``clusters/``; ``down`` stops
them and removes those files (only the kits of the given directory, default ``clusters/``, or with
``--all`` every kit of the calling user: kits live under a run root per user, so another user's
kits are never touched); ``status`` lists what runs. ``fleet cluster ...`` is the same command.
Errors print one line naming the log file and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleet.controlplane import binaries, provider
from fleet.controlplane.errors import KitError
from fleet.settings import default_cache_dir

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kit_command", required=True)
    up = sub.add_parser("up", help="start N local clusters and write their kubeconfigs")
    up.add_argument("-n", "--count", type=int, default=2, help="how many clusters (default 2)")
    up.add_argument(
        "--dir",
        type=Path,
        default=Path("clusters"),
        help="where to write one kubeconfig per cluster (default clusters/)",
    )
    up.add_argument(
        "--prefix", default="kit", help="cluster names are PREFIX-1 .. PREFIX-N (default kit)"
    )
    up.add_argument(
        "--provider",
        choices=["auto", "local", "kind"],
        default="auto",
        help="local: processes on this machine; kind: kind clusters (needs Docker); "
        "auto: kind where it works, else local (default auto)",
    )
    up.add_argument(
        "--etcd",
        choices=["shared", "per-cluster"],
        default="shared",
        help="one etcd for every cluster (each its own prefix) or one each (default shared)",
    )
    up.add_argument(
        "--base-port", type=int, default=None, help="fixed ports from here on (default: free ports)"
    )
    up.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for every cluster's fleet extension (repeatable)",
    )
    down = sub.add_parser(
        "down", help="stop the clusters `up` started into a directory (default clusters/)"
    )
    which = down.add_mutually_exclusive_group()
    which.add_argument(
        "--dir",
        type=Path,
        default=Path("clusters"),
        help="stop only the kits writing kubeconfigs into DIR, as `up --dir` was given "
        "(default clusters/)",
    )
    which.add_argument(
        "--all",
        action="store_true",
        help="stop every kit this user started on this machine, in any directory",
    )
    sub.add_parser("status", help="list running kit clusters")
    sub.add_parser("build", help="build the pinned binaries now (a cached build is reused)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.kit_command == "up":
            return _up(args)
        if args.kit_command == "down":
            stopped = provider.stop_detached(kubeconfig_dir=None if args.all else args.dir)
            where = "" if args.all else f" writing into {args.dir}"
            print(
                f"stopped {len(stopped)} kit(s){where}"
                + (f": {', '.join(stopped)}" if stopped else "")
            )
            return 0
        if args.kit_command == "build":
            paths = binaries.ensure_all(cache_dir=default_cache_dir())
            paths["helm"] = binaries.ensure_tool("helm", cache_dir=default_cache_dir())
            paths["krender"] = binaries.ensure_tool("krender", cache_dir=default_cache_dir())
            for name, path in sorted(paths.items()):
                print(f"{name}\t{path}")
            return 0
        lines = provider.status_lines()
        print("\n".join(lines) if lines else "no kit clusters running")
        return 0
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise KitError(f"-n must be at least 1, not {args.count}")
    labels: dict[str, str] = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KitError(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    names = [f"{args.prefix}-{i}" for i in range(1, args.count + 1)]
    kit = provider.make(
        args.provider,
        kubeconfig_dir=args.dir,
        attached=False,
        etcd=args.etcd,
        base_port=args.base_port,
    )
    try:
        clusters = kit.up(names, labels={name: {**labels, "kit": kit.name} for name in names})
    except KeyboardInterrupt:
        print("interrupted; stopped what had started", file=sys.stderr)
        return 130
    for cluster in clusters:
        print(f"{cluster.name}\t{cluster.server}\t{cluster.kubeconfig}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.controlplane", description="local Kubernetes control planes for fleet"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
