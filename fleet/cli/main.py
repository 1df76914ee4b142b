"""Entry point of the ``fleet`` command: one sub-command per verb, parsed with argparse.

What exists today: ``fleet cluster up|down|status|build`` (the local control-plane kit, for demos,
tests and the bench) and ``fleet version``. Each sub-command prints one ``error:`` line and exits
1 on a :class:`~fleet.errors.FleetError`; a traceback means a bug in fleet.
"""

from __future__ import annotations

import argparse
import sys

from fleet import __version__
from fleet.controlplane import cli as kit_cli

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cluster = sub.add_parser("cluster", help="local Kubernetes clusters for demos, tests, bench")
    kit_cli.add_arguments(cluster)
    sub.add_parser("version", help="print fleet's version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "cluster":
        return kit_cli.run(args)
    print(f"fleet {__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
