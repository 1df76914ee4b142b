"""Who may call the hub's API and see its page: bearer tokens with a role, and browser sessions.

The model:

- **Tokens** (:mod:`fleet.hub.tokens`) come from one file, each with a role: ``read`` (the page,
  ``GET /api/*``) or ``admin`` (also the control endpoints: every other method on ``/api/*``).
  A caller is known by the token's name, never by the token, in logs and answers alike.
- **Routes** say what they need with :func:`public` (health, readiness, webhooks, which verify
  themselves, the login form) or :func:`requires`; an unmarked route needs ``read`` for
  GET/HEAD/OPTIONS and ``admin`` for any other method, so a control endpoint added later is
  admin-only unless it says otherwise. An unknown path needs ``read`` too: an anonymous caller
  learns nothing about which routes exist.
- **Browsers** sign in with a form (``GET/POST /login``) that exchanges a token for a random
  session id in an ``HttpOnly; SameSite=Strict`` cookie (``Secure`` under TLS); the id is held
  server-side as a digest, expires after ``Sessions.ttl`` seconds, the store is bounded, and a
  session ends when its token is revoked. A cookie-authenticated unsafe request whose ``Origin``
  is another site is refused (CSRF), on top of SameSite. ``Authorization: Bearer`` works
  everywhere, for the CLI and scripts.
- Without a token file, nothing is checked (:class:`Guard` without tokens): the server then
  refuses to listen beyond loopback unless told ``--insecure-open-api`` (see
  :func:`fleet.hub.server.check_exposure`).

The sessions and the policy are pure (an injectable ``now``); the aiohttp middleware and the
login handlers at the bottom are the only I/O.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from fleet.hub.tokens import Principal, Role, TokenFile, digest

__all__ = [
    "COOKIE",
    "PRINCIPAL",
    "Guard",
    "Sessions",
    "bearer_token",
    "public",
    "required_access",
    "requires",
    "safe_next",
]

log = logging.getLogger(__name__)

COOKIE = "fleet_session"
LOGIN_PAGE = Path(__file__).with_name("login.html")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ACCESS_ATTR = "_fleet_access"


Access = Role | Literal["public"]


PRINCIPAL = web.RequestKey("fleet_principal", Principal)
"""Where the middleware leaves the authenticated caller: ``request[auth.PRINCIPAL]``."""


class Sessions:
    """Browser sessions: random ids held as digests, expiring, at most `limit` (oldest dropped).

    A session remembers the digest of the token it was opened with, not a role: the caller is
    looked up in the current book on every request, so a revoked token ends its sessions too.
    """

    def __init__(self, *, ttl: float = 8 * 3600.0, limit: int = 1000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._by_digest: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_digest)

    def create(self, token: str, *, now: float) -> str:
        sid = secrets.token_urlsafe(32)
        self._by_digest[digest(sid)] = (digest(token), now + self.ttl)
        while len(self._by_digest) > self.limit:
            self._by_digest.popitem(last=False)
        return sid

    def lookup(self, sid: str, *, now: float) -> bytes | None:
        """The digest of the session's token, or None (unknown or expired)."""
        key = digest(sid)
        held = self._by_digest.get(key)
        if held is None:
            return None
        token_digest, expires = held
        if now >= expires:
            del self._by_digest[key]
            return None
        return token_digest

    def drop(self, sid: str) -> None:
        self._by_digest.pop(digest(sid), None)


# -- the policy (pure) ----------------------------------------------------------------------------

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def public(handler: H) -> H:
    """Mark a route open to anyone (it verifies callers itself, or tells nothing)."""
    setattr(handler, _ACCESS_ATTR, "public")
    return handler


def requires(role: Literal["read", "admin"]) -> Callable[[H], H]:
    """Mark a route as needing `role` (e.g. ``@auth.requires("admin")``)."""
    needed = Role[role.upper()]

    def mark(handler: H) -> H:
        setattr(handler, _ACCESS_ATTR, needed)
        return handler

    return mark


def required_access(method: str, marked: object) -> Access:
    """What a request needs: the route's mark, else read for safe methods and admin otherwise."""
    if marked == "public" or isinstance(marked, Role):
        return marked
    return Role.READ if method.upper() in _SAFE_METHODS else Role.ADMIN


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def safe_next(target: str) -> str:
    """Where to go after signing in: a path on this site only (no ``//host``, no scheme)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


# -- aiohttp: the middleware and the login form ---------------------------------------------------


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class Guard:
    """The server's gate: authenticates each request and checks the route's role.

    `tokens` None means authentication is off (no token file): every request passes as a local
    admin; the server decides separately whether that is allowed (loopback only).
    """

    def __init__(
        self,
        tokens: TokenFile | None,
        *,
        secure_cookie: bool = False,
        sessions: Sessions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = tokens
        self.sessions = sessions or Sessions()
        self.secure_cookie = secure_cookie
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.tokens is not None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/login", self.login_form),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
        ]

    def authenticate(self, request: web.Request) -> tuple[Principal | None, str]:
        """The caller and how they proved it (``bearer``, ``cookie``), or (None, why not)."""
        assert self.tokens is not None
        book = self.tokens.book()
        header = request.headers.get("Authorization", "")
        if header:
            token = bearer_token(header)
            if token is None:
                return None, "the Authorization header is not `Bearer <token>`"
            principal = book.lookup(token)
            return (principal, "bearer") if principal else (None, "the bearer token is unknown")
        sid = request.cookies.get(COOKIE, "")
        if sid:
            token_digest = self.sessions.lookup(sid, now=self.clock())
            if token_digest is None:
                return None, "the session has expired: sign in again at /login"
            principal = book.lookup_digest(token_digest)
            if principal is None:
                return None, "the session's token is no longer valid: sign in again at /login"
            return principal, "cookie"
        return None, "no credentials: send `Authorization: Bearer <token>` or sign in at /login"

    def middleware(self) -> Middleware:
        """The aiohttp middleware (after the server's error middleware, before the handlers)."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._check(request, handler)

        return guard

    async def _check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.handler
        access = required_access(request.method, getattr(route_handler, _ACCESS_ATTR, None))
        if access == "public":
            return await handler(request)
        if self.tokens is None:
            request[PRINCIPAL] = Principal("local", Role.ADMIN)
            return await handler(request)
        principal, how = self.authenticate(request)
        if principal is None:
            log.info(
                "event=api_unauthenticated method=%s path=%s remote=%s",
                request.method,
                quote(request.path),
                request.remote,
            )
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
            return _error(401, how, **{"WWW-Authenticate": 'Bearer realm="fleet"'})
        assert isinstance(access, Role)
        if principal.role < access:
            log.warning(
                "event=api_forbidden principal=%s role=%s method=%s path=%s",
                principal.name,
                principal.role.label,
                request.method,
                quote(request.path),
            )
            return _error(
                403,
                f"token '{principal.name}' has role {principal.role.label}; "
                f"{request.method} {request.path} needs {access.label}",
            )
        if how == "cookie" and request.method not in _SAFE_METHODS:
            origin = request.headers.get("Origin", "")
            if origin and urlsplit(origin).netloc != request.host:
                return _error(403, f"cross-site request from {origin} refused")
        request[PRINCIPAL] = principal
        return await handler(request)

    @public
    async def login_form(self, request: web.Request) -> web.Response:
        failed = request.query.get("failed") == "1"
        return self._page(request.query.get("next", "/"), failed=failed)

    @public
    async def login(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        if origin and urlsplit(origin).netloc != request.host:
            return _error(403, f"cross-site sign-in from {origin} refused")
        form = await request.post()  # bounded by the app's client_max_size
        token = form.get("token")
        target = safe_next(str(form.get("next") or "/"))
        principal = None
        if self.tokens is not None and isinstance(token, str) and token:
            token = token.strip()
            principal = self.tokens.book().lookup(token)
        if principal is None or not isinstance(token, str):
            log.info("event=login_refused remote=%s", request.remote)
            raise web.HTTPSeeOther(f"/login?failed=1&next={quote(target, safe='')}")
        sid = self.sessions.create(token, now=self.clock())
        log.info("event=login principal=%s role=%s", principal.name, principal.role.label)
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE,
            sid,
            max_age=int(self.sessions.ttl),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookie,
        )
        raise response

    @public
    async def logout(self, request: web.Request) -> web.StreamResponse:
        sid = request.cookies.get(COOKIE, "")
        if sid:
            self.sessions.drop(sid)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    def _page(self, target: str, *, failed: bool) -> web.Response:
        message = "That token is not valid." if failed else ""
        if self.tokens is None:
            message = "This hub has no API tokens: nothing to sign in to."
        text = (
            LOGIN_PAGE.read_text()
            .replace("{{message}}", html.escape(message))
            .replace("{{next}}", html.escape(safe_next(target), quote=True))
        )
        return web.Response(text=text, content_type="text/html", status=200)
