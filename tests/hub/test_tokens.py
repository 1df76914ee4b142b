"""The API's tokens (pure but for reading the file): the file's two forms and its errors, the
book's constant-time lookup, re-reading the file when it changes. Tokens are planted and hunted
for in errors, reprs and logs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from fleet.errors import ConfigError
from fleet.hub import tokens

READ = "r" * 20
ADMIN = "a" * 20


def test_text_token_file() -> None:
    text = f"# the hub's callers\n{READ}, read, dashboards\n\n{ADMIN} , ADMIN  # ci\n"
    entries = tokens.parse_tokens(text, source="tokens.txt")
    assert [(e.token, e.role, e.name) for e in entries] == [
        (READ, tokens.Role.READ, "dashboards"),
        (ADMIN, tokens.Role.ADMIN, "line-4"),
    ]


def test_yaml_token_file() -> None:
    text = (
        f"tokens:\n  - {{token: {READ}, role: read}}\n"
        f"  - {{token: {ADMIN}, role: admin, name: ci}}\n"
    )
    entries = tokens.parse_tokens(text, source="tokens.yaml")
    assert [(e.role, e.name) for e in entries] == [
        (tokens.Role.READ, "entry-1"),
        (tokens.Role.ADMIN, "ci"),
    ]
    alone = tokens.parse_tokens(f"- {{token: {READ}, role: read}}\n", source="t.yaml")
    assert alone[0].role is tokens.Role.READ


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "t: no tokens"),
        ("short, read\n", "t: line 1: a token needs at least 16 characters"),
        (f"{READ}, write\n", "t: line 1: role 'write' is not one of read, admin"),
        (f"{READ}\n", "t: line 1: expected `token, role`"),
        (f"{READ}, read\n{READ}, admin\n", "t: the token named 'line-2' appears twice"),
        (f"- {{token: {READ}, role: read, scope: x}}\n", "t: entry 1: unknown field 'scope'"),
        ("- {role: read}\n", "t: entry 1: `token` is missing"),
        (f"{READ}, read, my laptop\n", "t: line 1: the name 'my laptop' may hold only letters"),
    ],
)
def test_bad_token_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        tokens.parse_tokens(text, source="t")
    assert str(caught.value).startswith(message)
    assert READ not in str(caught.value), "an error never shows a token"


def test_read_tokens_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the API token file .*missing.txt"):
        tokens.read_tokens(tmp_path / "missing.txt")


def test_an_entry_repr_hides_the_token() -> None:
    (entry,) = tokens.parse_tokens(f"{ADMIN}, admin, ci\n", source="t")
    assert ADMIN not in repr(entry) and "ci" in repr(entry)


def test_book_lookup() -> None:
    book = tokens.TokenBook(
        tokens.parse_tokens(f"{READ}, read, r\n{ADMIN}, admin, a\n", source="t")
    )
    assert book.lookup(READ) == tokens.Principal("r", tokens.Role.READ)
    assert book.lookup(ADMIN) == tokens.Principal("a", tokens.Role.ADMIN)
    assert book.lookup(READ[:-1]) is None
    assert book.lookup("") is None
    assert READ not in repr(vars(book)), "the book holds digests, not tokens"
    assert book.lookup_digest(b"x" * 32) is None


def test_token_file_is_reread_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "tokens.txt"
    path.write_text(f"{READ}, read, r\n")
    path.chmod(0o600)
    now = [0.0]
    token_file = tokens.TokenFile(path, interval=5.0, clock=lambda: now[0])
    assert token_file.book().lookup(READ) is not None and token_file.book().lookup(ADMIN) is None
    path.write_text(f"{ADMIN}, admin, a\n")
    os.utime(path, ns=(1, 1))  # a new stamp even within the file system's time granularity
    now[0] = 4.9
    assert token_file.book().lookup(READ) is not None, "not looked at before the interval"
    now[0] = 5.0
    assert token_file.book().lookup(READ) is None, "a removed token stops working"
    assert token_file.book().lookup(ADMIN) == tokens.Principal("a", tokens.Role.ADMIN)
    path.write_text("short, read\n")
    os.utime(path, ns=(2, 2))
    now[0] = 10.0
    assert token_file.book().lookup(ADMIN) is not None, "a bad file keeps the last good tokens"
    assert "event=api_tokens_reloaded" in caplog.text
    assert "event=api_tokens_reload_failed kept=last_good" in caplog.text
    assert ADMIN not in caplog.text and READ not in caplog.text


def test_a_readable_token_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{READ}, read\n")
    path.chmod(0o644)
    tokens.read_tokens(path)
    assert "event=api_tokens_readable" in caplog.text
