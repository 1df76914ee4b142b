"""One HTTP session per API server identity (:mod:`fleet.apply.sessions`).

Pure: the key holds what shapes a connection (server, CA, client certificate and key bytes,
verification, proxy) and not the per-request token; proxies are resolved from the environment as
aiohttp's ``trust_env`` did; the ``ApiClient`` built around a borrowed session has the attributes
kubernetes-asyncio's own constructor sets.

On a kit apiserver: two entries of one identity share one session and both work; entries that
differ only by bearer token share one too and each is still authenticated as itself (the token is
sent per request); an entry with another client certificate gets a session of its own, and the
server tells the two users apart even while both are busy (mutual TLS is per connection); closing
one entry leaves the other working, and the session closes with the last. Through a real HTTP
CONNECT proxy named by ``HTTPS_PROXY``, the entry's requests go through the proxy.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient, Configuration

from fleet import apply
from fleet.apply import sessions
from fleet.controlplane import RunningCluster
from tests.certkit import self_signed

pytestmark = pytest.mark.anyio

REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


# --- pure ------------------------------------------------------------------------------------


def _configuration(**fields: Any) -> Configuration:
    settings: Configuration = type.__call__(Configuration)
    settings.host = "https://10.0.0.1:6443"
    settings.ssl_ca_cert = "/ca.crt"
    settings.cert_file = "/admin.crt"
    settings.key_file = "/admin.key"
    for name, value in fields.items():
        setattr(settings, name, value)
    return settings


FILES = {
    "/ca.crt": b"CA",
    "/copy-of-ca.crt": b"CA",
    "/other-ca.crt": b"CA2",
    "/admin.crt": b"CERT",
    "/admin.key": b"KEY",
    "/other.crt": b"CERT2",
    "/other.key": b"KEY2",
}


def _key(**fields: Any) -> sessions.SessionKey:
    return sessions.key_of(_configuration(**fields), read=FILES.__getitem__)


def test_the_key_is_what_shapes_a_connection_not_the_token() -> None:
    base = _key()
    assert _key() == base
    assert _key(ssl_ca_cert="/copy-of-ca.crt") == base  # bytes, not paths
    assert _key(api_key={"BearerToken": "Bearer one"}) == base
    assert _key(api_key={"BearerToken": "Bearer two"}) == base
    different = [
        _key(host="https://10.0.0.2:6443"),
        _key(host="https://10.0.0.1:6444"),
        _key(host="http://10.0.0.1:6443"),
        _key(ssl_ca_cert="/other-ca.crt"),
        _key(cert_file="/other.crt"),
        _key(key_file="/other.key"),
        _key(cert_file=None, key_file=None),
        _key(verify_ssl=False),
        _key(tls_server_name="kubernetes.default"),
        _key(disable_strict_ssl_verification=True),
        _key(proxy="http://proxy:3128"),
    ]
    assert base not in different
    assert len(set(different)) == len(different)


def test_the_key_holds_no_file_contents_or_proxy_credentials() -> None:
    key = _key(proxy="http://user:secret@proxy:3128")
    assert "secret" not in repr(key)
    assert "CERT" not in repr(key) and "KEY" not in repr(key)


def test_a_server_that_is_no_url_is_named() -> None:
    with pytest.raises(ValueError, match="API server 'localhost'"):
        _key(host="localhost")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return monkeypatch


def test_env_proxy_is_what_trust_env_chose(
    no_proxy_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = "https://api.example:6443"
    assert sessions.env_proxy(server) is None
    no_proxy_env.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    assert sessions.env_proxy(server) == "http://user:pw@proxy.example:3128"
    no_proxy_env.setenv("NO_PROXY", "other.example,api.example")
    assert sessions.env_proxy(server) is None
    no_proxy_env.setenv("NO_PROXY", "other.example")
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    (tmp_path / "netrc").write_text("machine proxy.example login me password pass\n")
    assert sessions.env_proxy(server) == "http://me:pass@proxy.example:3128"
    assert sessions.env_proxy("http://api.example:8080") is None  # no HTTP_PROXY set


async def test_a_shared_client_has_the_attributes_of_a_plain_one() -> None:
    settings = _configuration(ssl_ca_cert=None, cert_file=None, key_file=None)
    plain = ApiClient(configuration=settings)
    pool = sessions.Sessions()
    shared = pool.client(settings)
    try:
        assert set(vars(shared)) - {"rest_client"} == set(vars(plain)) - {"rest_client"}
        assert shared.default_headers == plain.default_headers
        assert set(vars(shared.rest_client)) >= set(vars(plain.rest_client))
    finally:
        await plain.close()
        await shared.close()
    assert len(pool) == 0


# --- on a kit apiserver ----------------------------------------------------------------------


def _document(cluster: RunningCluster) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    return document


def _with_user(document: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    changed = dict(document)
    changed["users"] = [{**document["users"][0], "user": user}]
    return changed


def _stranger_cert() -> dict[str, str]:
    """A client certificate (and key) the kit's apiserver does not trust: self-signed."""
    cert, key = self_signed("stranger")
    return {
        "client-certificate-data": base64.b64encode(cert).decode(),
        "client-key-data": base64.b64encode(key).decode(),
    }


async def _who(cluster: apply.Cluster) -> str:
    """The user the apiserver sees `cluster`'s requests as (a SelfSubjectReview)."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = await cluster.request("POST", REVIEW, body=review)
    return str(answer["status"]["userInfo"]["username"])


def _session(cluster: apply.Cluster) -> Any:
    return cluster.api.rest_client.pool_manager


async def test_two_entries_of_one_identity_share_one_session_until_the_last_leaves(
    kit_clusters: list[RunningCluster],
) -> None:
    document = _document(kit_clusters[0])
    pool = sessions.Sessions()
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            apply.connect(document, name="first", sessions=pool)
        )
        async with apply.connect(document, name="second", sessions=pool) as second:
            assert _session(first) is _session(second)
            assert list(pool.clients().values()) == [2]
            async with anyio.create_task_group() as group:
                for cluster in (first, second) * 5:
                    group.start_soon(cluster.request, "GET", "/api/v1/namespaces/default")
            assert await _who(first) == await _who(second) == "fleet-kit-admin"
        session = _session(first)
        assert list(pool.clients().values()) == [1]
        assert not session.closed  # the second's ApiClient closing left it open
        assert (await first.request("GET", "/api/v1/namespaces/default"))["kind"] == "Namespace"
    assert len(pool) == 0
    assert session.closed


async def test_another_client_certificate_gets_its_own_session(
    kit_clusters: list[RunningCluster],
) -> None:
    document = _document(kit_clusters[0])
    stranger = _with_user(document, _stranger_cert())
    pool = sessions.Sessions()
    async with (
        apply.connect(document, name="admin", sessions=pool) as admin,
        apply.connect(stranger, name="stranger", sessions=pool) as other,
    ):
        assert _session(admin) is not _session(other)
        assert len(pool) == 2
        refused: list[int] = []

        async def as_stranger() -> None:
            try:
                await other.request("GET", "/api/v1/namespaces/default")
            except apply.ApiError as exc:
                refused.append(exc.status)

        async with anyio.create_task_group() as group:  # both busy: pooled connections abound
            for _ in range(5):
                group.start_soon(admin.request, "GET", "/api/v1/namespaces/default")
                group.start_soon(as_stranger)
        assert refused == [401] * 5
        assert await _who(admin) == "fleet-kit-admin"


async def _token(admin: apply.Cluster, account: str) -> str:
    path = "/api/v1/namespaces/default/serviceaccounts"
    await admin.request("POST", path, body={"metadata": {"name": account}})
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    answer = await admin.request("POST", f"{path}/{account}/token", body=request)
    return str(answer["status"]["token"])


async def test_entries_that_differ_by_token_share_a_session_each_as_itself(
    kit_clusters: list[RunningCluster],
) -> None:
    document = _document(kit_clusters[0])
    account = f"sessions-{uuid.uuid4().hex[:8]}"
    async with apply.connect(document, name="admin") as admin:
        token = await _token(admin, account)
    pool = sessions.Sessions()
    async with (
        apply.connect(_with_user(document, {"token": token}), name="sa", sessions=pool) as sa,
        apply.connect(_with_user(document, {"token": "bogus"}), name="bogus", sessions=pool) as bad,
    ):
        assert _session(sa) is _session(bad)
        assert list(pool.clients().values()) == [2]
        for _ in range(3):
            assert await _who(sa) == f"system:serviceaccount:default:{account}"
            with pytest.raises(apply.ApiError) as refused:
                await _who(bad)
            assert refused.value.status == 401


class ConnectProxy:
    """A real HTTP CONNECT proxy on 127.0.0.1: tunnels bytes, records each CONNECT target."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.port = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        await listener.serve(self._tunnel)

    async def _tunnel(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await client.receive()
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method != "CONNECT":
                await client.send(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            self.targets.append(target)
            host, _, port = target.rpartition(":")
            async with await anyio.connect_tcp(host, int(port)) as server:
                await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                async with anyio.create_task_group() as group:
                    group.start_soon(_pipe, client, server, group.cancel_scope)
                    group.start_soon(_pipe, server, client, group.cancel_scope)


async def _pipe(
    source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    scope.cancel()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    running = ConnectProxy()
    async with anyio.create_task_group() as group:
        await group.start(running.serve)
        yield running
        group.cancel_scope.cancel()


async def test_the_environment_proxy_is_used_once_resolved(
    kit_clusters: list[RunningCluster], proxy: ConnectProxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    server = kit_clusters[0]
    pool = sessions.Sessions()
    async with apply.connect(_document(server), name="proxied", sessions=pool) as cluster:
        assert await _who(cluster) == "fleet-kit-admin"
    assert proxy.targets
    assert set(proxy.targets) == {f"127.0.0.1:{server.port}"}


async def test_fencing_one_entry_abandons_its_requests_only(
    kit_clusters: list[RunningCluster],
) -> None:
    document = _document(kit_clusters[0])
    pool = sessions.Sessions()
    outcome: dict[str, str] = {}
    watch: list[tuple[str, str]] = []

    async def long_request(cluster: apply.Cluster) -> None:
        try:
            await cluster.request("GET", "/api/v1/namespaces", query=watch, request_timeout=20)
        except apply.ApiError as exc:
            outcome[cluster.name] = f"error {exc.status}: {exc.message}"
        else:
            outcome[cluster.name] = "answered"

    async with (
        apply.connect(document, name="fenced", sessions=pool) as fenced,
        apply.connect(document, name="kept", sessions=pool) as kept,
    ):
        assert _session(fenced) is _session(kept)
        listed = await kept.request("GET", "/api/v1/namespaces")
        watch += [  # a request that lasts 3 s and answers nothing: no such namespace changes
            ("watch", "1"),
            ("resourceVersion", str(listed["metadata"]["resourceVersion"])),
            ("fieldSelector", "metadata.name=no-such-namespace"),
            ("timeoutSeconds", "3"),
        ]
        async with anyio.create_task_group() as group:
            group.start_soon(long_request, fenced)
            group.start_soon(long_request, kept)
            await anyio.sleep(1.0)
            assert fenced.fence("test: silent") == 1
        assert outcome["fenced"].startswith("error 0:")
        assert "abandoned" in outcome["fenced"]
        assert outcome["kept"] == "answered"
        assert not _session(kept).closed
        fenced.unfence()
        assert await _who(fenced) == await _who(kept) == "fleet-kit-admin"
