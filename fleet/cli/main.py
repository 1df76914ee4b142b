"""Entry point of the ``fleet`` command: one sub-command per verb, parsed with argparse.

- ``fleet run``: the hub. ``fleet status`` and ``fleet history`` read what it did.
- ``fleet render``, ``fleet diff``, ``fleet sync``: one app, once, without the hub.
- ``fleet cluster up|down|status|build``: local control planes for demos, tests and the bench.

Each sub-command prints one ``error:`` line and exits 1 on a :class:`~fleet.errors.FleetError`
(here too if a sub-command lets one through, its text scrubbed of secrets by
:func:`fleet.logs.scrub`); a bad option is one line and exit 2 (argparse); Ctrl-C exits 130 and a
pipe closed early (``fleet status | head -1``) exits 141, both without a traceback. A traceback
means a bug in fleet.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from fleet import __version__, logs
from fleet.cli import hubcmd
from fleet.errors import FleetError

__all__ = ["main"]

Handlers = dict[str, Callable[[argparse.Namespace], int]]

_HUB: Handlers = {"run": hubcmd.run_hub, "status": hubcmd.run_status, "history": hubcmd.run_history}


def _top() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="fleet", description="keep a fleet of Kubernetes clusters in sync with git"
    )
    return parser, parser.add_subparsers(dest="command", required=True)


def _hub_parser() -> tuple[argparse.ArgumentParser, Handlers]:
    """Only :mod:`fleet.cli.hubcmd`'s commands: ``fleet run`` imports nothing it does not run
    (the other commands' modules cost tenths of a second before the hub can listen)."""
    parser, sub = _top()
    hubcmd.add_arguments(sub)
    return parser, dict(_HUB)


def _parser() -> tuple[argparse.ArgumentParser, Handlers]:
    """Every command (what ``fleet --help`` lists)."""
    from fleet.cli import control, demo, eventscmd, oneshot, schemacmd
    from fleet.controlplane import cli as kit_cli
    from fleet.gitops import cli as gitops_cli

    parser, sub = _top()
    cluster = sub.add_parser("cluster", help="local Kubernetes clusters for demos, tests, bench")
    kit_cli.add_arguments(cluster)
    hubcmd.add_arguments(sub)
    eventscmd.add_arguments(sub)
    control.add_arguments(sub)
    oneshot.add_arguments(sub)
    gitops_cli.add_arguments(sub)
    demo.add_arguments(sub)
    schemacmd.add_arguments(sub)
    sub.add_parser("version", help="print fleet's version")
    handlers: Handlers = {
        "cluster": kit_cli.run,
        **_HUB,
        "events": eventscmd.run_events,
        "demo": demo.run,
        "schema": schemacmd.run,
        "render": oneshot.run,
        "diff": oneshot.run,
        "sync": lambda args: control.sync_through_hub(args) if args.url else oneshot.run(args),
        **dict.fromkeys(control.COMMANDS, control.run),
        **dict.fromkeys(gitops_cli.COMMANDS, gitops_cli.run),
    }
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, handlers = _hub_parser() if argv[:1] and argv[0] in _HUB else _parser()
    args = parser.parse_args(argv)
    handler = handlers.get(args.command)
    try:
        if handler is not None:
            code = handler(args)
        else:
            print(f"fleet {__version__}")
            code = 0
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
    except FleetError as exc:
        print(f"error: {logs.scrub(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away
    except KeyboardInterrupt:
        return 130
    return code


def _silence_stdout() -> None:
    """The reader is gone: point stdout at /dev/null so the exit flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
