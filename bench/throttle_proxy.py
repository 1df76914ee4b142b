"""A 429-injecting HTTPS proxy in front of one kit apiserver: throttling on demand.

:class:`ThrottleProxy` listens on 127.0.0.1 with a certificate of its own CA (issued here by the
kit's :mod:`fleet.controlplane.pki`, so TLS is verified end to end, no insecure-skip) and forwards
every request to the real apiserver with the cluster's own client certificate, streaming the
answer (watches included). A share of requests (``share``, changeable while running) is answered
``429 Too Many Requests`` with ``Retry-After`` and the apiserver's own Status body instead, as
API Priority and Fairness does; the draw is seeded, so a run is repeatable. ``refuse`` (a
predicate of method and path, changeable too) answers 429 to every request it picks, whatever
the share: a test holds back the writes of chosen objects. ``by_path`` counts requests by method
and path, so a test can tell which objects were written.
:meth:`ThrottleProxy.kubeconfig` writes a copy of the cluster's kubeconfig that dials the proxy
(same name, labels and user; the proxy's CA). Used by ``python -m bench.throttle`` and by
``tests/faults/test_throttling.py``.

The client key is written to a private temporary directory for the upstream TLS context and
removed on exit.
"""

from __future__ import annotations

import base64
import random
import ssl
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from fleet.controlplane import kubeconfig as kit_kubeconfig
from fleet.controlplane import pki

__all__ = ["ThrottleProxy"]

_HOP_BY_HOP = {
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_TOO_MANY = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Too many requests, please try again later.",
    "reason": "TooManyRequests",
    "details": {"retryAfterSeconds": 1},
    "code": 429,
}


def _current(document: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    context = next(
        c["context"] for c in document["contexts"] if c["name"] == document["current-context"]
    )
    entry = next(e for e in document[section] if e["name"] == context[key])
    found: dict[str, Any] = entry[key]
    return found


def _kind_of(request: web.Request) -> str:
    """``METHOD resource`` (plus ``watch``) of an API request: what the hub spends requests on."""
    parts = [p for p in request.path.split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[2:]  # /api/v1/...
    elif parts[:1] == ["apis"]:
        parts = parts[3:]  # /apis/group/version/...
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    resource = parts[0] if parts else request.path
    watch = " watch" if request.query.get("watch") in ("1", "true") else ""
    return f"{request.method} {resource}{watch}"


class ThrottleProxy:
    """An HTTPS reverse proxy to the apiserver of `kubeconfig` answering `share` of requests 429."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        share: float,
        retry_after: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.source = kubeconfig
        self.share = share
        self.retry_after = retry_after
        self.requests = 0
        self.throttled = 0
        self.by_status: Counter[int] = Counter()
        self.by_kind: Counter[str] = Counter()  # "PATCH configmaps", "GET configmaps watch", ...
        self.by_path: Counter[str] = Counter()  # "PATCH /api/v1/namespaces/x/configmaps/y", ...
        self.refuse: Callable[[str, str], bool] = lambda _method, _path: False
        self.port = 0
        self._rng = random.Random(seed)  # a repeatable draw, not cryptography
        self._document: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
        self._upstream = str(_current(self._document, "clusters", "cluster")["server"]).rstrip("/")
        self._pki = pki.issue_cluster_pki("throttle-proxy", hosts=["127.0.0.1", "localhost"])
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path) -> Path:
        """Write a copy of the cluster's kubeconfig to `path` that dials this proxy."""
        document = yaml.safe_load(self.source.read_text())
        cluster = _current(document, "clusters", "cluster")
        cluster["server"] = self.url
        cluster.pop("certificate-authority", None)
        cluster["certificate-authority-data"] = base64.b64encode(self._pki.ca.cert_pem).decode()
        kit_kubeconfig.write(path, document)
        return path

    async def __aenter__(self) -> ThrottleProxy:
        self._dir = tempfile.TemporaryDirectory(prefix="throttle-proxy-")
        root = Path(self._dir.name)
        user = _current(self._document, "users", "user")
        cluster = _current(self._document, "clusters", "cluster")
        files = {
            "ca.pem": base64.b64decode(cluster["certificate-authority-data"]),
            "client.pem": base64.b64decode(user["client-certificate-data"]),
            "client-key.pem": base64.b64decode(user["client-key-data"]),
            "serving.pem": self._pki.serving.cert_pem,
            "serving-key.pem": self._pki.serving.key_pem,
        }
        for name, data in files.items():
            (root / name).write_bytes(data)
            (root / name).chmod(0o600)
        upstream = ssl.create_default_context(cafile=str(root / "ca.pem"))
        upstream.load_cert_chain(str(root / "client.pem"), str(root / "client-key.pem"))
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(str(root / "serving.pem"), str(root / "serving-key.pem"))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream, limit=200),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=serving)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._dir is not None:
            self._dir.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.by_kind[_kind_of(request)] += 1
        self.by_path[f"{request.method} {request.path}"] += 1
        drawn = self._rng.random() < self.share  # drawn for every request: a repeatable run
        if self.refuse(request.method, request.path) or drawn:
            self.throttled += 1
            self.by_status[429] += 1
            retry = f"{self.retry_after:g}"
            body = dict(_TOO_MANY, details={"retryAfterSeconds": int(self.retry_after)})
            return web.json_response(body, status=429, headers={"Retry-After": retry})
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        data = await request.read()
        async with self._session.request(
            request.method,
            self._upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=data or None,
        ) as upstream:
            self.by_status[upstream.status] += 1
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # the client went away (a watch it cancelled): nothing left to forward
            return response
