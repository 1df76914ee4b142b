"""One HTTP session per API server identity, shared by every client that reaches it the same way.

kubernetes-asyncio gives each ``ApiClient`` its own ``aiohttp.ClientSession``: its own connector
(a pool of TLS connections), its own ``ssl.SSLContext`` with the CA loaded, and ``trust_env``,
which reads ``~/.netrc`` in a worker thread on every request. A hub with 1,000 entries on 4 API
servers so held 1,000 pools and contexts, and handshook again after every idle spell.

**The key** (:class:`SessionKey`, :func:`key_of`) is everything that shapes a *connection*: the
server's scheme, host and port, the CA bundle's bytes, the client certificate's and key's bytes
(mutual TLS authenticates the connection, so two users by certificate never share one), whether
the server is verified, the TLS server name, strict verification, and the proxy. Per-request
auth (bearer tokens, rotating in-cluster tokens, exec plugins) is not in it: the ``ApiClient``
adds those headers to each request itself, so entries with different tokens share a pool safely.
File contents are keyed by SHA-256, never kept as text.

**The pool** (:class:`Sessions`) counts the clients of each session. :meth:`Sessions.client` builds
an ``ApiClient`` whose REST client borrows the shared session (:mod:`fleet.apply.sharedclient`,
imported then: no session, connector or SSL context of its own is ever built); closing that client
(``ApiClient.close()``, which closes ``rest_client.pool_manager`` in kubernetes-asyncio) only gives
its lease back, once. The session closes when its last client leaves; it is taken out of the pool
first, so a client arriving meanwhile gets a new one.

**Proxies** are resolved once, when a session is made, from the environment as ``trust_env``
did (``HTTPS_PROXY`` / ``HTTP_PROXY``, ``NO_PROXY``, credentials in the URL or in netrc for the
proxy's host); the session itself trusts nothing from the environment afterwards. A kubeconfig's
own ``proxy-url`` wins, as before. The netrc entry of the API server's own host, which
``trust_env`` also tried per request, is not used: kubeconfig auth is the only auth sent.

**No connection cap** (``TCPConnector(limit=0)``). Watches are requests that last minutes on the
same pool: one per (entry, kind), so thousands on one server at 1,000 entries. A cap below that
would let watches hold every slot and starve short requests; a cap above it bounds nothing.
Requests are bounded where they are made (each ``Cluster``'s concurrency limiter and the hub's
per-cluster gates), and idle connections close after ``keepalive`` seconds. (client-go
multiplexes all of it over one HTTP/2 connection; aiohttp speaks HTTP/1.1.) Cookies are not
kept (``DummyCookieJar``): one jar shared by clients of different users would carry one user's
cookie into another's requests.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import anyio
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

if TYPE_CHECKING:  # the client package is imported when the first client is made
    from kubernetes_asyncio.client import ApiClient, Configuration

__all__ = ["SessionKey", "Sessions", "env_proxy", "key_of"]

log = logging.getLogger(__name__)

READ_BUFSIZE = 2**21  # as kubernetes-asyncio: a watch event may carry a 1.5 MiB object
CLOSE_WITHIN = 5.0  # seconds a closing session may take to close its connections


@dataclass(frozen=True)
class SessionKey:
    """What shapes a connection to an API server (file contents as SHA-256, ``""`` for none)."""

    origin: str  # scheme://host:port
    ca: str
    cert: str
    key: str
    verify: bool
    server_name: str
    strict: bool
    proxy: str  # SHA-256 of the configured proxy URL and headers (may hold credentials)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if data else ""


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def _origin(host: str) -> str:
    url = URL(host)
    if not url.scheme or not url.host:
        raise ValueError(f"API server {host!r}: not a URL with a scheme and a host")
    return f"{url.scheme}://{url.host}:{url.port}"


def key_of(configuration: Configuration, *, read: Callable[[str], bytes] = _read) -> SessionKey:
    """The session key of a loaded client configuration; `read` reads a referenced file.

    A file that cannot be read is an ``OSError`` naming it (the kubeconfig points at it).
    """

    def contents(path: str | None) -> str:
        return _digest(read(path)) if path else ""

    proxy = configuration.proxy or ""
    headers = sorted((configuration.proxy_headers or {}).items())
    return SessionKey(
        origin=_origin(str(configuration.host)),
        ca=contents(configuration.ssl_ca_cert),
        cert=contents(configuration.cert_file),
        key=contents(configuration.key_file),
        verify=bool(configuration.verify_ssl),
        server_name=str(configuration.tls_server_name or ""),
        strict=not configuration.disable_strict_ssl_verification,
        proxy=_digest(repr((proxy, headers)).encode()) if proxy or headers else "",
    )


def env_proxy(server: str) -> str | None:
    """The proxy the environment names for `server` (``NO_PROXY`` honoured), credentials in its
    URL, or None: what aiohttp's ``trust_env`` chose per request, resolved once."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(server))
    except LookupError:
        return None
    if auth is not None:
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return str(proxy)


def _ssl_context(configuration: Configuration) -> ssl.SSLContext:
    """The TLS settings as kubernetes-asyncio's REST client makes them."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


@dataclass
class _Shared:
    key: SessionKey
    session: aiohttp.ClientSession
    proxy: str | None  # resolved from the environment when the session was made
    clients: int = 0


class Sessions:
    """Shared HTTP sessions by :class:`SessionKey`, each closed with its last client."""

    def __init__(self, *, keepalive: float = 15.0) -> None:
        self._keepalive = keepalive
        self._shared: dict[SessionKey, _Shared] = {}

    def __len__(self) -> int:
        """Sessions open now."""
        return len(self._shared)

    def clients(self) -> dict[SessionKey, int]:
        """Clients per open session."""
        return {key: shared.clients for key, shared in self._shared.items()}

    def client(self, configuration: Configuration) -> ApiClient:
        """An ``ApiClient`` for `configuration` on the session of its key (made if none is
        open); close it (``async with`` or ``close()``) to leave the session. Must run in the
        event loop that will use it."""
        key = key_of(configuration)
        shared = self._shared.get(key)
        if shared is None:
            shared = self._open(key, configuration)
        shared.clients += 1
        from fleet.apply import sharedclient  # kubernetes-asyncio's client package: see there

        rest = sharedclient.SharedRest(
            session=shared.session,
            proxy=shared.proxy,
            configuration=configuration,
            release=functools.partial(self._release, shared),
        )
        return sharedclient.SharedApiClient(configuration, rest)

    def _open(self, key: SessionKey, configuration: Configuration) -> _Shared:
        connector = aiohttp.TCPConnector(
            limit=0, ssl=_ssl_context(configuration), keepalive_timeout=self._keepalive
        )
        session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=READ_BUFSIZE,
        )
        shared = _Shared(key=key, session=session, proxy=env_proxy(key.origin))
        self._shared[key] = shared
        log.info("event=api_session_opened server=%s sessions=%d", key.origin, len(self._shared))
        return shared

    async def _release(self, shared: _Shared) -> None:
        shared.clients -= 1
        if shared.clients > 0:
            return
        if self._shared.get(shared.key) is shared:
            del self._shared[shared.key]
        log.info(
            "event=api_session_closed server=%s sessions=%d", shared.key.origin, len(self._shared)
        )
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_WITHIN):
            await shared.session.close()
