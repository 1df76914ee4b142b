"""API authentication, its pure parts: the token file, the book, sessions, the route policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from fleet.errors import ConfigError
from fleet.hub import auth

READ = "r" * 20
ADMIN = "a" * 20


def test_text_token_file() -> None:
    text = f"# the hub's callers\n{READ}, read, dashboards\n\n{ADMIN} , ADMIN  # ci\n"
    entries = auth.parse_tokens(text, source="tokens.txt")
    assert [(e.token, e.role, e.name) for e in entries] == [
        (READ, auth.Role.READ, "dashboards"),
        (ADMIN, auth.Role.ADMIN, "line-4"),
    ]


def test_yaml_token_file() -> None:
    text = (
        f"tokens:\n  - {{token: {READ}, role: read}}\n"
        f"  - {{token: {ADMIN}, role: admin, name: ci}}\n"
    )
    entries = auth.parse_tokens(text, source="tokens.yaml")
    assert [(e.role, e.name) for e in entries] == [
        (auth.Role.READ, "entry-1"),
        (auth.Role.ADMIN, "ci"),
    ]
    alone = auth.parse_tokens(f"- {{token: {READ}, role: read}}\n", source="t.yaml")
    assert alone[0].role is auth.Role.READ


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
    ],
)
def test_bad_token_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        auth.parse_tokens(text, source="t")
    assert str(caught.value).startswith(message)
    assert READ not in str(caught.value), "an error never shows a token"


def test_read_tokens_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the API token file .*missing.txt"):
        auth.read_tokens(tmp_path / "missing.txt")


def test_an_entry_repr_hides_the_token() -> None:
    (entry,) = auth.parse_tokens(f"{ADMIN}, admin, ci\n", source="t")
    assert ADMIN not in repr(entry) and "ci" in repr(entry)


def test_book_lookup() -> None:
    book = auth.TokenBook(auth.parse_tokens(f"{READ}, read, r\n{ADMIN}, admin, a\n", source="t"))
    assert book.lookup(READ) == auth.Principal("r", auth.Role.READ)
    assert book.lookup(ADMIN) == auth.Principal("a", auth.Role.ADMIN)
    assert book.lookup(READ[:-1]) is None
    assert book.lookup("") is None
    assert READ not in repr(vars(book)), "the book holds digests, not tokens"


def test_sessions_expire_and_are_bounded() -> None:
    sessions = auth.Sessions(ttl=10.0, limit=2)
    who = auth.Principal("a", auth.Role.ADMIN)
    first = sessions.create(who, now=100.0)
    assert sessions.lookup(first, now=109.9) == who
    assert sessions.lookup(first, now=110.0) is None, "expired at ttl"
    assert sessions.lookup(first, now=100.0) is None, "and forgotten"
    a, b, c = (sessions.create(who, now=200.0) for _ in range(3))
    assert len(sessions) == 2 and sessions.lookup(a, now=200.0) is None, "the oldest is dropped"
    assert sessions.lookup(c, now=200.0) == who
    sessions.drop(c)
    assert sessions.lookup(c, now=200.0) is None and sessions.lookup(b, now=200.0) == who
    assert sessions.lookup("forged", now=200.0) is None


def test_policy() -> None:
    assert auth.required_access("GET", None) is auth.Role.READ
    assert auth.required_access("HEAD", None) is auth.Role.READ
    assert auth.required_access("POST", None) is auth.Role.ADMIN
    assert auth.required_access("DELETE", None) is auth.Role.ADMIN
    assert auth.required_access("POST", "public") == "public"
    assert auth.required_access("GET", auth.Role.ADMIN) is auth.Role.ADMIN


def test_decorators_mark_handlers() -> None:
    @auth.requires(auth.Role.ADMIN)
    async def control(_: web.Request) -> web.Response:
        raise NotImplementedError

    @auth.public
    async def health(_: web.Request) -> web.Response:
        raise NotImplementedError

    assert auth.required_access("GET", getattr(control, "_fleet_access", None)) is auth.Role.ADMIN
    assert auth.required_access("POST", getattr(health, "_fleet_access", None)) == "public"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {READ}", READ),
        (f"bearer   {READ} ", READ),
        (f"Basic {READ}", None),
        ("Bearer", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert auth.bearer_token(header) == token


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/", "/"),
        ("/api/status?x=1", "/api/status?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("evil", "/"),
    ],
)
def test_safe_next(target: str, safe: str) -> None:
    assert auth.safe_next(target) == safe
