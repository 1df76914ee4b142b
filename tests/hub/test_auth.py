"""API authentication: first its pure parts (sessions, the route policy), then served for real:
roles per route, the login form and its cookie, token reload and revocation, TLS. Tokens are
planted where logs could reach them and hunted for. The token file itself: test_tokens.py."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from fleet.hub import auth, server, tokens
from tests.certkit import self_signed
from tests.hub.test_server import PUSH, SECRET, RecordingHub, running, sign

pytestmark = pytest.mark.anyio

READ = "r" * 20
ADMIN = "a" * 20
READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"


def test_sessions_expire_and_are_bounded() -> None:
    sessions = auth.Sessions(ttl=10.0, limit=2)
    first = sessions.create(ADMIN, now=100.0)
    book = tokens.TokenBook(tokens.parse_tokens(f"{ADMIN}, admin, a\n", source="t"))
    held = sessions.lookup(first, now=109.9)
    assert held is not None and book.lookup_digest(held) == tokens.Principal("a", tokens.Role.ADMIN)
    assert sessions.lookup(first, now=110.0) is None, "expired at ttl"
    assert sessions.lookup(first, now=100.0) is None, "and forgotten"
    a, b, c = (sessions.create(ADMIN, now=200.0) for _ in range(3))
    assert len(sessions) == 2 and sessions.lookup(a, now=200.0) is None, "the oldest is dropped"
    assert sessions.lookup(c, now=200.0) is not None
    sessions.drop(c)
    assert sessions.lookup(c, now=200.0) is None and sessions.lookup(b, now=200.0) is not None
    assert sessions.lookup("forged", now=200.0) is None
    assert ADMIN not in repr(vars(sessions)), "sessions hold digests, not tokens"


def test_policy() -> None:
    assert auth.required_access("GET", None) is tokens.Role.READ
    assert auth.required_access("HEAD", None) is tokens.Role.READ
    assert auth.required_access("POST", None) is tokens.Role.ADMIN
    assert auth.required_access("DELETE", None) is tokens.Role.ADMIN
    assert auth.required_access("POST", "public") == "public"
    assert auth.required_access("GET", tokens.Role.ADMIN) is tokens.Role.ADMIN


def test_decorators_mark_handlers() -> None:
    @auth.requires("admin")
    async def control(_: web.Request) -> web.Response:
        raise NotImplementedError

    @auth.public
    async def health(_: web.Request) -> web.Response:
        raise NotImplementedError

    assert auth.required_access("GET", getattr(control, "_fleet_access", None)) is tokens.Role.ADMIN
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


# -- served: a real server and real HTTP, TLS included ---------------------------------------------


@auth.requires("admin")
async def admin_view(request: web.Request) -> web.Response:
    return web.json_response({"principal": request[auth.PRINCIPAL].name})


async def control(request: web.Request) -> web.Response:
    """An unmarked POST: admin by the default policy."""
    return web.json_response({"done": True, "principal": request[auth.PRINCIPAL].name})


ROUTES = [web.get("/api/admin-view", admin_view), web.post("/api/control", control)]


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{READ_TOKEN}, read, dashboards\n{ADMIN_TOKEN}, admin, ci\n")
    path.chmod(0o600)
    return path


def authed(tmp_path: Path, **extra: Any) -> server.ServerSettings:
    return server.ServerSettings(
        port=0, github_secret=SECRET, api_tokens=token_file(tmp_path), **extra
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_tokens_and_roles(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hub = RecordingHub(ready=True)
    async with (
        running(hub, authed(tmp_path), routes=ROUTES) as port,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{port}"

        async def status_of(method: str, path: str, headers: dict[str, str]) -> int:
            async with http.request(method, f"{base}{path}", headers=headers) as r:
                await r.read()
                return r.status

        cases = {
            # (method, path): (no token, read, admin)
            ("GET", "/api/status"): (401, 200, 200),
            ("GET", "/"): (401, 200, 200),
            ("GET", "/api/admin-view"): (401, 403, 200),
            ("POST", "/api/control"): (401, 403, 200),
            ("GET", "/api/no-such-route"): (401, 404, 404),
            ("GET", "/healthz"): (200, 200, 200),
            ("GET", "/readyz"): (200, 200, 200),
            ("GET", "/metrics"): (200, 200, 200),
        }
        for (method, path), wanted in cases.items():
            got = (
                await status_of(method, path, {}),
                await status_of(method, path, bearer(READ_TOKEN)),
                await status_of(method, path, bearer(ADMIN_TOKEN)),
            )
            assert got == wanted, (method, path)
        for header in (f"Bearer {READ_TOKEN}x", f"Basic {ADMIN_TOKEN}", "Bearer "):
            assert await status_of("GET", "/api/status", {"Authorization": header}) == 401
        async with http.get(f"{base}/api/status") as r:
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="fleet"'
            assert "Authorization: Bearer" in (await r.json())["error"]
        async with http.post(f"{base}/api/control", headers=bearer(READ_TOKEN)) as r:
            assert (await r.json())["error"] == (
                "token 'dashboards' has role read; POST /api/control needs admin"
            )
        async with http.post(f"{base}/api/control", headers=bearer(ADMIN_TOKEN)) as r:
            assert await r.json() == {"done": True, "principal": "ci"}
        # webhooks stay open to their own verification: a signed push needs no token
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(PUSH)}
        async with http.post(f"{base}/webhooks/github", data=PUSH, headers=headers) as r:
            assert r.status == 200
    assert "event=api_forbidden principal=dashboards" in caplog.text
    for token in (READ_TOKEN, ADMIN_TOKEN):
        assert token not in caplog.text, "a token is never logged"


async def test_metrics_can_need_a_token(tmp_path: Path) -> None:
    settings = authed(tmp_path, metrics_open=False)
    async with running(RecordingHub(), settings) as port, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 401
        async with http.get(f"http://127.0.0.1:{port}/metrics", headers=bearer(READ_TOKEN)) as r:
            assert r.status == 200


async def test_browser_signs_in_with_a_cookie(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = RecordingHub()
    async with (
        running(hub, authed(tmp_path), routes=ROUTES) as port,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        base = f"http://127.0.0.1:{port}"
        html = {"Accept": "text/html,application/xhtml+xml"}
        async with http.get(f"{base}/", headers=html, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login?next=/"
        async with http.get(f"{base}/login?next=%2F") as r:
            form = await r.text()
            assert r.status == 200 and 'name="token"' in form and 'value="/"' in form
        async with http.post(
            f"{base}/login", data={"token": "wrong-token-0123456789", "next": "/"},
            allow_redirects=False,
        ) as r:  # fmt: skip
            assert r.status == 303 and r.headers["Location"].startswith("/login?failed=1")
            assert "Set-Cookie" not in r.headers
        async with http.post(
            f"{base}/login", data={"token": ADMIN_TOKEN}, headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        ) as r:  # fmt: skip
            assert r.status == 403 and "Set-Cookie" not in r.headers, "no cross-site sign-in"
        async with http.get(f"{base}/login?failed=1") as r:
            assert "That token is not valid." in await r.text()
        async with http.post(
            f"{base}/login", data={"token": ADMIN_TOKEN, "next": "//evil.example/"},
            allow_redirects=False,
        ) as r:  # fmt: skip
            assert r.status == 303 and r.headers["Location"] == "/", "no open redirect"
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            assert "Secure" not in cookie, "plain HTTP: a Secure cookie would never come back"
            assert ADMIN_TOKEN not in cookie, "the cookie is a session id, not the token"
        async with http.get(f"{base}/api/status") as r:
            assert r.status == 200
        async with http.get(f"{base}/", headers=html) as r:
            assert r.status == 200 and "<title>fleet</title>" in await r.text()
        async with http.post(f"{base}/api/control", headers={"Origin": base}) as r:
            assert r.status == 200, "same-site control with the session cookie"
        async with http.post(f"{base}/api/control", headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403 and "cross-site" in (await r.json())["error"]
        async with http.post(f"{base}/logout", allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"{base}/api/status") as r:
            assert r.status == 401, "signed out"
    assert "event=login principal=ci role=admin" in caplog.text
    assert "event=login_refused" in caplog.text
    assert ADMIN_TOKEN not in caplog.text and "wrong-token" not in caplog.text


async def test_a_revoked_token_ends_its_sessions(tmp_path: Path) -> None:
    settings = authed(tmp_path)
    assert settings.api_tokens is not None
    async with (
        running(RecordingHub(), settings) as port,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        base = f"http://127.0.0.1:{port}"
        async with http.post(f"{base}/login", data={"token": READ_TOKEN}) as r:
            assert r.status == 200 and r.url.path == "/"
        async with http.get(f"{base}/api/status") as r:
            assert r.status == 200
        settings.api_tokens.write_text(f"{ADMIN_TOKEN}, admin, ci\n")
        os.utime(settings.api_tokens, ns=(1, 1))
        await anyio.sleep(5.1)  # the file is looked at every 5 s
        async with http.get(f"{base}/api/status") as r:
            assert r.status == 401
            assert "no longer valid" in (await r.json())["error"]
        async with http.get(f"{base}/api/status", headers=bearer(READ_TOKEN)) as r:
            assert r.status == 401
        async with http.get(f"{base}/api/status", headers=bearer(ADMIN_TOKEN)) as r:
            assert r.status == 200, "the new token works without a restart"


async def test_a_big_form_is_refused(tmp_path: Path) -> None:
    async with running(RecordingHub(), authed(tmp_path)) as port, aiohttp.ClientSession() as http:
        form = {"token": "x" * (100 * 2**10)}
        async with http.post(f"http://127.0.0.1:{port}/login", data=form) as r:
            assert r.status == 413 and "error" in await r.json()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = self_signed("127.0.0.1", ip="127.0.0.1")
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return cert_path, key_path


async def test_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    settings = authed(tmp_path, tls_cert=cert, tls_key=key)
    trust = ssl.create_default_context(cafile=str(cert))
    async with running(RecordingHub(), settings) as port, aiohttp.ClientSession() as http:
        base = f"https://127.0.0.1:{port}"
        async with http.get(f"{base}/api/status", headers=bearer(READ_TOKEN), ssl=trust) as r:
            assert r.status == 200 and (await r.json())["apps"][0]["app"] == "web"
        async with http.post(
            f"{base}/login", data={"token": READ_TOKEN}, ssl=trust, allow_redirects=False
        ) as r:
            assert "Secure" in r.headers["Set-Cookie"], "under TLS the cookie is Secure"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(f"{base}/healthz"):  # the default trust store does not know it
                pass
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                await r.read()


# -- in a real browser: headless Chromium driven over the DevTools protocol ------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """One page of a headless Chromium, driven over its DevTools WebSocket (commands in order)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        with anyio.fail_after(20):
            while True:
                message = await self.ws.receive_json()
                if message.get("id") == self.next_id:
                    assert "error" not in message, message
                    result: dict[str, Any] = message["result"]
                    return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str, *, limit: float = 15.0) -> Any:
        with anyio.fail_after(limit):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await anyio.sleep(0.1)


@contextlib.asynccontextmanager
async def chromium(url: str, profile: Path) -> AsyncIterator[DevTools]:
    assert CHROMIUM is not None
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", url]  # fmt: skip
    browser = await anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert browser.stderr is not None
        marker, said = b"DevTools listening on ws://", b""
        # a start-up bound, not a speed check: on a loaded 2-core machine Chromium has taken
        # over 30 s to print its DevTools line
        with anyio.move_on_after(120):
            while marker not in said or b"\n" not in said.split(marker, 1)[1]:
                said += await browser.stderr.receive()
        if marker not in said or b"\n" not in said.split(marker, 1)[1]:
            raise AssertionError(f"Chromium said no DevTools line in 120 s: {said[-2000:]!r}")
        port = said.split(marker, 1)[1].split(b"/", 1)[0].rsplit(b":", 1)[1].decode()

        async def drain() -> None:  # a full pipe would stall the browser
            assert browser.stderr is not None
            async for _ in browser.stderr:
                pass

        async with anyio.create_task_group() as tg, aiohttp.ClientSession() as http:
            tg.start_soon(drain)
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                pages = [t for t in await r.json() if t["type"] == "page"]
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
            tg.cancel_scope.cancel()
    finally:
        browser.terminate()
        with anyio.CancelScope(shield=True):
            await browser.wait()
        await browser.aclose()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
async def test_a_browser_signs_in_and_sees_the_page(tmp_path: Path) -> None:
    async with running(RecordingHub(), authed(tmp_path)) as port:
        base = f"http://127.0.0.1:{port}"
        async with chromium(f"{base}/", tmp_path / "profile") as page:
            href = await page.until("location.pathname === '/login' && location.href")
            assert href == f"{base}/login?next=/", "the page sends a stranger to the form"
            await page.until("document.readyState === 'complete'")
            await page.evaluate(
                f"document.getElementById('token').value = {json.dumps(READ_TOKEN)};"
                "document.querySelector('form').submit(); true"
            )
            await page.until("location.pathname === '/' && document.readyState === 'complete'")
            # wait for the rendered matrix, not the word: the page's own stylesheet says "Synced"
            dom = await page.until(
                "document.querySelector('span.Synced') !== null && document.body.innerHTML"
            )
            assert 'href="#/cluster/eu">eu</a></th>' in dom
            assert '<span class="Synced">Synced</span>' in dom
            (cookie,) = (await page.call("Network.getCookies"))["cookies"]
            assert cookie["name"] == auth.COOKIE
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert READ_TOKEN not in cookie["value"]
            assert await page.evaluate("document.cookie") == "", "scripts cannot read it"
