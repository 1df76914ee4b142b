"""Entry point of the ``fleet`` command: one sub-command per verb, parsed with argparse.

- ``fleet run``: the hub. ``fleet status`` and ``fleet history`` read what it did.
- ``fleet render``, ``fleet diff``, ``fleet sync``: one app, once, without the hub.
- ``fleet cluster up|down|status|build``: local control planes for demos, tests and the bench.

Each sub-command prints one ``error:`` line and exits 1 on a :class:`~fleet.errors.FleetError`;
a traceback means a bug in fleet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from fleet import __version__
from fleet.cli import demo, hubcmd, oneshot
from fleet.controlplane import cli as kit_cli
from fleet.gitops import cli as gitops_cli

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet", description="keep a fleet of Kubernetes clusters in sync with git"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cluster = sub.add_parser("cluster", help="local Kubernetes clusters for demos, tests, bench")
    kit_cli.add_arguments(cluster)
    hubcmd.add_arguments(sub)
    oneshot.add_arguments(sub)
    gitops_cli.add_arguments(sub)
    demo.add_arguments(sub)
    sub.add_parser("version", help="print fleet's version")
    return parser


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "cluster": kit_cli.run,
    "run": hubcmd.run_hub,
    "status": hubcmd.run_status,
    "history": hubcmd.run_history,
    "demo": demo.run,
    "render": oneshot.run,
    "diff": oneshot.run,
    "sync": oneshot.run,
    **dict.fromkeys(gitops_cli.COMMANDS, gitops_cli.run),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = _HANDLERS.get(args.command)
    if handler is not None:
        return handler(args)
    print(f"fleet {__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
