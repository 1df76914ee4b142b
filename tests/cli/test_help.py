"""Every option and argument of every ``fleet`` command says what it is for, and an option with a
default says which (the issue's complaint: ``--workers`` and friends without a word)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from fleet.cli.main import _parser


def _actions(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def _quiet(action: argparse.Action) -> bool:
    """A default a reader need not be told: none, off, empty."""
    return action.default in (None, False, "", [], argparse.SUPPRESS) or not action.option_strings


def test_every_option_has_help_that_names_its_default() -> None:
    missing = []
    for path, action in _actions(_parser()[0], ("fleet",)):
        text = action.help or ""
        where = " ".join((*path, "/".join(action.option_strings) or action.dest))
        if not text.strip():
            missing.append(f"{where}: no help")
        elif not _quiet(action) and "default" not in text:
            missing.append(f"{where}: help does not say its default ({action.default!r})")
    assert missing == []


def test_the_walk_sees_every_command() -> None:
    commands = {path for path, _ in _actions(_parser()[0], ("fleet",))}
    for command in ("run", "status", "history", "sync", "diff", "render", "rollback", "demo"):
        assert ("fleet", command) in commands
    assert ("fleet", "cluster", "up") in commands and ("fleet", "image", "set") in commands
