"""Acceptance: kit clusters reached only through a real asyncssh jump host.

Each test starts :class:`~tests.transport.sshd.SshServer` in its own event loop and a kubeconfig
whose server name only that jump host resolves; kubernetes-asyncio then talks TLS to the real
apiserver through :class:`fleet.transport.Tunnels`.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import pytest
from kubernetes_asyncio import config

from fleet.apply.kube import APPLY_PATCH, Cluster
from fleet.controlplane import RunningCluster
from fleet.transport import LinkRefused, Tunnels, tunneled_document
from tests.transport.edge import (
    FAST,
    HIDDEN,
    client,
    edge_kubeconfig,
    eventually,
    get_config_map,
    ping,
    put_config_map,
)
from tests.transport.sshd import SshServer, User, new_key, write_private_key

pytestmark = pytest.mark.anyio


@dataclass
class Keys:
    user_file: Path
    user: User
    known_hosts: Path
    root: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    key = new_key()
    return Keys(
        user_file=write_private_key(key, tmp_path / "keys" / "edge"),
        user=User(keys=(key.convert_to_public(),), forward=True),
        known_hosts=tmp_path / "known_hosts",
        root=tmp_path,
    )


def pin(keys: Keys, *servers: SshServer) -> None:
    keys.known_hosts.write_text("".join(s.known_hosts_line() for s in servers))


async def test_cluster_reached_only_through_the_tunnel(
    kit_clusters: list[RunningCluster], keys: Keys
) -> None:
    with pytest.raises(OSError):
        socket.getaddrinfo(HIDDEN, 443)  # not resolvable here: only the jump host knows it
    kit = kit_clusters[0]
    async with SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        pin(keys, bastion)
        edge = edge_kubeconfig(
            kit,
            keys.root,
            name="edge-1",
            jumps=[(bastion.port, "fleet")],
            identity=keys.user_file,
            known_hosts=keys.known_hosts,
        )
        async with Tunnels(FAST) as tunnels:
            endpoint = await tunnels.endpoint(edge)
            assert endpoint.url.startswith("https://127.0.0.1:")
            assert endpoint.tls_server_name == "localhost"
            await tunnels.wait_ready("edge-1", time_limit=20)
            assert tunnels.state("edge-1").state == "up"
            async with client(tunneled_document(edge, endpoint)) as core:
                await put_config_map(core, "through-ssh", {"hello": "edge"})
                assert await get_config_map(core, "through-ssh") == {"hello": "edge"}
            assert await tunnels.endpoint(edge) == endpoint  # idempotent while unchanged
    assert (HIDDEN, kit.port) in bastion.forwards


async def test_tls_name_is_really_verified(kit_clusters: list[RunningCluster], keys: Keys) -> None:
    kit = kit_clusters[0]
    async with SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        pin(keys, bastion)
        common = {"jumps": [(bastion.port, "fleet")], "identity": keys.user_file}
        wrong = edge_kubeconfig(
            kit,
            keys.root,
            name="wrong-name",
            known_hosts=keys.known_hosts,
            tls_server_name="not-the-apiserver.example",
            **common,  # type: ignore[arg-type]
        )
        by_ip = edge_kubeconfig(
            kit,
            keys.root,
            name="by-ip",
            known_hosts=keys.known_hosts,
            server_host="127.0.0.1",
            tls_server_name=None,
            **common,  # type: ignore[arg-type]
        )
        async with Tunnels(FAST) as tunnels:
            endpoint = await tunnels.endpoint(wrong)
            await tunnels.wait_ready("wrong-name", time_limit=20)
            async with client(tunneled_document(wrong, endpoint)) as core:
                with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
                    await ping(core)
            assert "not-the-apiserver.example" in str(caught.value)
            # the name defaults to the server URL's host; an IP is checked against IP SANs
            endpoint = await tunnels.endpoint(by_ip)
            assert endpoint.tls_server_name == "127.0.0.1"
            async with client(tunneled_document(by_ip, endpoint)) as core:
                assert await ping(core) == "default"


async def test_clusters_share_one_link_closed_with_the_last(
    kit_clusters: list[RunningCluster], keys: Keys
) -> None:
    async with SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        pin(keys, bastion)
        edges = [
            edge_kubeconfig(
                kit,
                keys.root,
                name=f"edge-{i}",
                jumps=[(bastion.port, "fleet")],
                identity=keys.user_file,
                known_hosts=keys.known_hosts,
            )
            for i, kit in enumerate(kit_clusters[:2])
        ]
        async with Tunnels(FAST) as tunnels:
            endpoints = [await tunnels.endpoint(edge) for edge in edges]
            assert tunnels.link_count() == 1
            for edge, endpoint in zip(edges, endpoints, strict=True):
                await tunnels.wait_ready(edge.ref.name, time_limit=20)
                async with client(tunneled_document(edge, endpoint)) as core:
                    await put_config_map(core, "shared", {"cluster": edge.ref.name})
                    assert await get_config_map(core, "shared") == {"cluster": edge.ref.name}
            assert bastion.connections_seen == 1 and bastion.active == 1
            await tunnels.release("edge-0")
            assert tunnels.link_count() == 1 and bastion.active == 1
            await tunnels.release("edge-1")
            assert tunnels.link_count() == 0
            await eventually(lambda: bastion.active == 0, seconds=5)
            assert tunnels.states() == {}


async def test_outage_is_seen_and_recovers_without_a_new_manager(
    kit_clusters: list[RunningCluster], keys: Keys
) -> None:
    kit = kit_clusters[0]
    bastion = SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"})
    await bastion.start()
    try:
        pin(keys, bastion)
        edge = edge_kubeconfig(
            kit,
            keys.root,
            name="edge-1",
            jumps=[(bastion.port, "fleet")],
            identity=keys.user_file,
            known_hosts=keys.known_hosts,
        )
        async with Tunnels(FAST) as tunnels:
            endpoint = await tunnels.endpoint(edge)
            await tunnels.wait_ready("edge-1", time_limit=20)
            async with client(tunneled_document(edge, endpoint)) as core:
                await put_config_map(core, "outage", {"phase": "before"})

                await bastion.stop()
                await eventually(lambda: tunnels.state("edge-1").state != "up", seconds=10)
                state = tunnels.state("edge-1")
                assert state.state == "reconnecting"
                assert state.error is not None and "cluster edge-1" in state.error
                with anyio.fail_after(15), pytest.raises(aiohttp.ClientError):
                    await get_config_map(core, "outage")  # fails fast, does not hang

                await bastion.start()  # same port, same host key
                await tunnels.wait_ready("edge-1", time_limit=20)
                assert await tunnels.endpoint(edge) == endpoint  # same local port throughout
                assert await get_config_map(core, "outage") == {"phase": "before"}
                await put_config_map(core, "outage", {"phase": "after"})
                assert await get_config_map(core, "outage") == {"phase": "after"}
    finally:
        await bastion.stop()


async def test_unknown_or_changed_host_key_is_refused(
    kit_clusters: list[RunningCluster], keys: Keys
) -> None:
    async with SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        keys.known_hosts.write_text(bastion.known_hosts_line(key=new_key()))  # a changed key
        edge = edge_kubeconfig(
            kit_clusters[0],
            keys.root,
            name="edge-hk",
            jumps=[(bastion.port, "fleet")],
            identity=keys.user_file,
            known_hosts=keys.known_hosts,
            accept_new=True,  # even so: a host known with another key is refused
        )
        async with Tunnels(FAST) as tunnels:
            await tunnels.endpoint(edge)
            with pytest.raises(LinkRefused) as caught:
                await tunnels.wait_ready("edge-hk", time_limit=20)
            message = str(caught.value)
            assert "cluster edge-hk" in message and "host key refused" in message
            assert f"127.0.0.1:{bastion.port}" in message
            assert tunnels.state("edge-hk").state == "refused"
            assert bastion.forwards == []


async def test_new_host_key_accepted_only_when_allowed(
    kit_clusters: list[RunningCluster], keys: Keys
) -> None:
    async with SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        for accept in (False, True):
            edge = edge_kubeconfig(
                kit_clusters[0],
                keys.root,
                name="edge-new",
                jumps=[(bastion.port, "fleet")],
                identity=keys.user_file,
                known_hosts=keys.known_hosts,
                accept_new=accept,
            )
            keys.known_hosts.write_text("")  # the host is unknown
            async with Tunnels(FAST) as tunnels:
                endpoint = await tunnels.endpoint(edge)
                if not accept:
                    with pytest.raises(LinkRefused, match=r"cluster edge-new: .*host key refused"):
                        await tunnels.wait_ready("edge-new", time_limit=20)
                    continue
                await tunnels.wait_ready("edge-new", time_limit=20)
                async with client(tunneled_document(edge, endpoint)) as core:
                    assert await ping(core) == "default"
        assert keys.known_hosts.read_text() == bastion.known_hosts_line()


async def test_wrong_user_key_or_user_without_forwarding_is_refused(
    kit_clusters: list[RunningCluster], keys: Keys
) -> None:
    stranger = write_private_key(new_key(), keys.root / "keys" / "stranger")
    no_forward = User(keys=keys.user.keys, forward=False)
    users = {"fleet": keys.user, "viewer": no_forward}
    async with SshServer(users=users, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        pin(keys, bastion)
        wrong_key = edge_kubeconfig(
            kit_clusters[0],
            keys.root,
            name="edge-key",
            jumps=[(bastion.port, "fleet")],
            identity=stranger,
            known_hosts=keys.known_hosts,
        )
        viewer = edge_kubeconfig(
            kit_clusters[0],
            keys.root,
            name="edge-viewer",
            jumps=[(bastion.port, "viewer")],
            identity=keys.user_file,
            known_hosts=keys.known_hosts,
        )
        async with Tunnels(FAST) as tunnels:
            await tunnels.endpoint(wrong_key)
            with pytest.raises(LinkRefused) as caught:
                await tunnels.wait_ready("edge-key", time_limit=20)
            assert "cluster edge-key" in str(caught.value)
            assert "user key refused" in str(caught.value) and str(stranger) in str(caught.value)
            # logged in, but this user may not open channels: the request fails, never hangs
            endpoint = await tunnels.endpoint(viewer)
            await tunnels.wait_ready("edge-viewer", time_limit=20)
            async with client(tunneled_document(viewer, endpoint)) as core:
                with anyio.fail_after(15), pytest.raises(aiohttp.ClientError):
                    await ping(core)
    assert bastion.forwards == []


async def test_two_hops(kit_clusters: list[RunningCluster], keys: Keys) -> None:
    inner = SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"})
    outer = SshServer(users={"fleet": keys.user})
    async with inner, outer:
        pin(keys, outer, inner)
        edge = edge_kubeconfig(
            kit_clusters[1],
            keys.root,
            name="deep",
            jumps=[(outer.port, "fleet"), (inner.port, "fleet")],
            identity=keys.user_file,
            known_hosts=keys.known_hosts,
        )
        async with Tunnels(FAST) as tunnels:
            endpoint = await tunnels.endpoint(edge)
            assert endpoint.via == f"fleet@127.0.0.1:{outer.port} -> fleet@127.0.0.1:{inner.port}"
            await tunnels.wait_ready("deep", time_limit=20)
            async with client(tunneled_document(edge, endpoint)) as core:
                assert await ping(core) == "default"
    assert outer.forwards == [("127.0.0.1", inner.port)]
    assert inner.forwards == [(HIDDEN, kit_clusters[1].port)]


async def test_server_side_apply_and_watch_through_the_tunnel(
    kit_clusters: list[RunningCluster], keys: Keys
) -> None:
    """The hub's own client (fleet.apply.kube) applies and watches over the tunnel."""
    async with SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        pin(keys, bastion)
        edge = edge_kubeconfig(
            kit_clusters[0],
            keys.root,
            name="edge-1",
            jumps=[(bastion.port, "fleet")],
            identity=keys.user_file,
            known_hosts=keys.known_hosts,
        )
        async with Tunnels(FAST) as tunnels:
            endpoint = await tunnels.endpoint(edge)
            await tunnels.wait_ready("edge-1", time_limit=20)
            api = await config.new_client_from_config_dict(tunneled_document(edge, endpoint))
            async with api:
                cluster = Cluster(name="edge-1", api=api)
                path = "/api/v1/namespaces/default/configmaps"
                listed = await cluster.request("GET", path)
                query = [("watch", "1"), ("resourceVersion", listed["metadata"]["resourceVersion"])]
                seen: list[str] = []
                async with (
                    cluster.stream(path, query=query, request_timeout=30) as response,
                    anyio.create_task_group() as tg,
                ):

                    async def apply() -> None:
                        body = {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {"name": "watched", "namespace": "default"},
                            "data": {"via": "ssh"},
                        }
                        query = [("fieldManager", "fleet"), ("force", "true")]
                        await cluster.request(
                            "PATCH",
                            f"{path}/watched",
                            query=query,
                            body=body,
                            content_type=APPLY_PATCH,
                        )

                    tg.start_soon(apply)
                    with anyio.fail_after(20):
                        async for line in response.content:
                            event = json.loads(line)
                            seen.append(event["object"]["metadata"]["name"])
                            if seen[-1] == "watched":
                                break
                assert seen[-1] == "watched"
                got = await cluster.request("GET", f"{path}/watched")
                assert got["data"] == {"via": "ssh"}
