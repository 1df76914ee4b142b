"""The tunnel manager: a stable local endpoint per cluster, carried over a shared SSH link.

The model: ``async with Tunnels() as tunnels`` owns one task group. ``await
tunnels.endpoint(cluster_file)`` gives the URL the cluster's client dials and the TLS name it
verifies: for a cluster without an SSH route, its own server URL; for one with a route, a listener
on ``127.0.0.1:<port>`` whose every accepted connection becomes one direct-tcpip channel, over the
route's :class:`~fleet.transport.links.Link`, to the API server's host and port *as seen from the
last hop*. TLS runs end to end, inside the channel, between the client and the API server: same CA,
same client credentials, server name verified as the kubeconfig's host (or ``tls-server-name``).

Guarantees:

- The local port of a cluster is stable for as long as the cluster is held, across SSH drops and
  reconnects, so a client built once keeps working when the link comes back.
- Clusters whose routes have the same hops and credentials share one link; the link is closed when
  the last of them is released.
- While the link is down, a new local connection waits for an attempt already in flight (at most
  ``accept_wait``), else is closed at once: callers see a connection error quickly and their
  circuit breaker parks the cluster, rather than hanging.
- :meth:`Tunnels.state` tells, per cluster, whether the link is up, connecting, reconnecting or
  refused, with the last error naming the cluster, the hop and the cause.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
import anyio.abc
import anyio.lowlevel

from fleet.config.clusters import ClusterFile
from fleet.errors import FleetError
from fleet.transport.linkstate import LinkError, LinkRefused, LinkSettings, Sleep
from fleet.transport.routes import ApiTarget, SshRoute, api_target, parse_route

if TYPE_CHECKING:  # asyncssh (and the link, which uses it) once a tunnelled cluster joins
    import asyncssh

    from fleet.transport.links import Link

__all__ = ["Endpoint", "TunnelSettings", "TunnelState", "Tunnels"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TunnelSettings:
    """SSH link settings, and how long a local connection waits for a link coming up."""

    link: LinkSettings = field(default_factory=LinkSettings)
    accept_wait: float = 10.0
    listen_host: str = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    """Where a cluster's client connects, and the server name its TLS must verify."""

    cluster: str
    url: str
    tls_server_name: str | None  # None: verify the URL's own host (direct, or plain http)
    via: str | None = None  # the SSH route, for status pages; None when direct


@dataclass(frozen=True)
class TunnelState:
    """One cluster's reach: ``direct``, or its link's state and last error."""

    cluster: str
    state: str  # direct | connecting | up | reconnecting | refused
    error: str | None
    via: str | None
    failures: int = 0


@dataclass
class _Tunnel:
    cluster: str
    route: SshRoute
    target: ApiTarget
    endpoint: Endpoint
    link: Link
    scope: anyio.CancelScope


@dataclass
class _Held:
    link: Link
    scope: anyio.CancelScope
    clusters: set[str] = field(default_factory=set)


class Tunnels:
    """Every cluster's tunnel, and the shared SSH links under them."""

    def __init__(self, settings: TunnelSettings | None = None, *, sleep: Sleep = anyio.sleep):
        self.settings = settings or TunnelSettings()
        self._sleep = sleep
        self._tunnels: dict[str, _Tunnel] = {}
        self._direct: dict[str, Endpoint] = {}
        self._links: dict[tuple[object, ...], _Held] = {}
        self._stack = AsyncExitStack()
        self._tg: anyio.abc.TaskGroup | None = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._tunnels.clear()
        self._links.clear()
        self._tg = None
        return await self._stack.__aexit__(exc_type, exc, tb)

    async def endpoint(self, cluster: ClusterFile) -> Endpoint:
        """The endpoint of `cluster`, opening its tunnel on first call (or when its route changed).

        Returns at once: the link connects in the background (see :meth:`wait_ready`). A bad
        route is a :class:`~fleet.errors.ConfigError` naming the file and field.
        """
        name = cluster.ref.name
        route = parse_route(cluster)
        target = api_target(cluster)
        async with self._lock:
            if route is None:
                await self._release(name)
                endpoint = Endpoint(cluster=name, url=cluster.server, tls_server_name=None)
                self._direct[name] = endpoint
                return endpoint
            self._direct.pop(name, None)
            held = self._tunnels.get(name)
            if held is not None and (held.route, held.target) == (route, target):
                return held.endpoint
            await self._release(name)
            return await self._open(name, route=route, target=target)

    async def release(self, cluster: str) -> None:
        """Forget `cluster`: close its listener and, if it was the last user, its SSH link."""
        async with self._lock:
            self._direct.pop(cluster, None)
            await self._release(cluster)

    def state(self, cluster: str) -> TunnelState:
        """The reach of `cluster` now; a :class:`KeyError` if it is not held."""
        if cluster in self._direct:
            return TunnelState(cluster=cluster, state="direct", error=None, via=None)
        tunnel = self._tunnels[cluster]
        status = tunnel.link.status
        error = f"cluster {cluster}: {status.error}" if status.error else None
        return TunnelState(
            cluster=cluster,
            state=status.state,
            error=error,
            via=str(tunnel.route),
            failures=status.failures,
        )

    def states(self) -> dict[str, TunnelState]:
        """Every held cluster's :meth:`state`."""
        return {name: self.state(name) for name in sorted({*self._direct, *self._tunnels})}

    def link_count(self) -> int:
        """SSH links open or being opened (one per distinct route)."""
        return len(self._links)

    async def wait_ready(self, cluster: str, *, time_limit: float) -> Endpoint:
        """Wait until `cluster` is reachable; else raise its last error, naming the cluster.

        A refusal (host key, user key) raises :class:`~fleet.transport.links.LinkRefused` (a
        stalled error) as soon as it is known; other failures raise
        :class:`~fleet.transport.links.LinkError` (transient) after `time_limit` seconds.
        """
        if cluster in self._direct:
            return self._direct[cluster]
        tunnel = self._tunnels[cluster]
        with anyio.move_on_after(time_limit):
            while True:
                status = tunnel.link.status
                if status.state == "up":
                    return tunnel.endpoint
                if status.state == "refused":
                    raise LinkRefused(f"cluster {cluster}: {status.error}")
                await anyio.sleep(0.05)
        error = tunnel.link.status.error or "ssh link not up yet"
        raise LinkError(f"cluster {cluster}: unreachable after {time_limit:g} s: {error}")

    # -- internals --------------------------------------------------------------------------

    async def _open(self, name: str, *, route: SshRoute, target: ApiTarget) -> Endpoint:
        tg = self._require_tg()
        held = self._links.get(route.key)
        if held is None:
            from fleet.transport.links import Link  # asyncssh: see fleet.transport.linkstate

            link = Link(route, settings=self.settings.link, sleep=self._sleep)
            held = _Held(link=link, scope=await tg.start(_scoped, link.run))
            self._links[route.key] = held
            log.info("event=ssh_link_open route=%s", route)
        held.clusters.add(name)
        listener = await anyio.create_tcp_listener(
            local_host=self.settings.listen_host, local_port=0
        )
        port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610
        host = self.settings.listen_host
        endpoint = Endpoint(
            cluster=name,
            url=f"{target.scheme}://{host}:{port}",
            tls_server_name=target.tls_server_name,
            via=str(route),
        )

        async def serve() -> None:
            async with listener, anyio.create_task_group() as connections:
                await listener.serve(
                    lambda stream: self._forward(stream, link=held.link, target=target, name=name),
                    task_group=connections,
                )

        scope = await tg.start(_scoped, serve)
        self._tunnels[name] = _Tunnel(
            cluster=name,
            route=route,
            target=target,
            endpoint=endpoint,
            link=held.link,
            scope=scope,
        )
        log.info(
            "event=tunnel_open cluster=%s local_port=%d target=%s:%d route=%s",
            name,
            port,
            target.host,
            target.port,
            route,
        )
        return endpoint

    async def _release(self, name: str) -> None:
        tunnel = self._tunnels.pop(name, None)
        if tunnel is None:
            return
        tunnel.scope.cancel()
        held = self._links.get(tunnel.route.key)
        if held is not None:
            held.clusters.discard(name)
            if not held.clusters:
                held.scope.cancel()
                del self._links[tunnel.route.key]
                log.info("event=ssh_link_closed route=%s", tunnel.route)
        log.info("event=tunnel_closed cluster=%s", name)
        await anyio.lowlevel.checkpoint()

    async def _forward(
        self, client: anyio.abc.SocketStream, *, link: Link, target: ApiTarget, name: str
    ) -> None:
        try:
            await self._carry(client, link=link, target=target, name=name)
        except Exception:  # one connection's surprise must not take every tunnel down
            log.exception("event=tunnel_connection_bug cluster=%s", name)

    async def _carry(
        self, client: anyio.abc.SocketStream, *, link: Link, target: ApiTarget, name: str
    ) -> None:
        import asyncssh

        async with client:
            conn = await link.connection(time_limit=self.settings.accept_wait)
            if conn is None:
                log.debug("event=tunnel_refused_local cluster=%s state=%s", name, link.status.state)
                return
            try:
                reader, writer = await conn.open_connection(target.host, target.port)
            except (asyncssh.Error, OSError) as exc:
                log.warning(
                    "event=tunnel_channel_failed cluster=%s target=%s:%d error=%s",
                    name,
                    target.host,
                    target.port,
                    exc,
                )
                return
            try:
                async with anyio.create_task_group() as pipes:
                    pipes.start_soon(_upstream, client, writer)
                    pipes.start_soon(_downstream, reader, client, pipes.cancel_scope)
            finally:
                writer.close()

    def _require_tg(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise FleetError("Tunnels used outside its `async with` block")
        return self._tg


async def _scoped(
    body: Callable[[], Awaitable[object]],
    *,
    task_status: anyio.abc.TaskStatus[anyio.CancelScope] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``await body()`` in its own cancel scope, handed to the starter."""
    with anyio.CancelScope() as scope:
        task_status.started(scope)
        await body()


async def _upstream(client: anyio.abc.SocketStream, writer: asyncssh.SSHWriter[bytes]) -> None:
    """Local client -> SSH channel; an EOF from the client is passed on."""
    import asyncssh

    try:
        async for chunk in client:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (asyncssh.Error, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


async def _downstream(
    reader: asyncssh.SSHReader[bytes],
    client: anyio.abc.SocketStream,
    scope: anyio.CancelScope,
) -> None:
    """SSH channel -> local client; when the channel ends, so does the whole connection."""
    import asyncssh

    try:
        while chunk := await reader.read(_CHUNK):
            await client.send(chunk)
    except (asyncssh.Error, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        scope.cancel()
