"""The hub end to end with a cluster behind an SSH bastion (issue 8), against real components.

A kit cluster is reachable from the hub only through a real asyncssh server
(:mod:`tests.transport.sshd`): its kubeconfig in ``clusters/`` names a host that does not resolve
here, which only the SSH server maps to the apiserver. A second kit cluster is reached directly.
What converged is read from the clusters with their own kubeconfigs (an independent reader). The
waits are safety nets for a failing hub, not speed assertions.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from fleet.apply import ApiError
from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub, unreachable
from fleet.runtime import BreakerSettings, BreakerState
from tests.hub.hubkit import (
    configmap,
    drop,
    hub_settings,
    namespace_doc,
    push_webhook,
    until,
    value_on,
)
from tests.sources.gitkit import Remote
from tests.transport.edge import FAST, HIDDEN, edge_kubeconfig
from tests.transport.sshd import SshServer, User, new_key, write_private_key

pytestmark = [pytest.mark.anyio, pytest.mark.clusters]

# A parked cluster is probed again within a second: the test waits for recovery, not for backoff.
BREAKER = BreakerSettings(failures=2, probe_base=0.2, probe_cap=1.0)


@dataclass
class Keys:
    user_file: Path
    user: User
    known_hosts: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    key = new_key()
    return Keys(
        user_file=write_private_key(key, tmp_path / "keys" / "hub"),
        user=User(keys=(key.convert_to_public(),), forward=True),
        known_hosts=tmp_path / "known_hosts",
    )


def fleet_yaml(app: str, repo_url: str, namespace: str) -> str:
    return f"""apps:
  - name: {app}
    source: {{repoURL: "{repo_url}", targetRevision: main, path: app}}
    destination: {{namespace: {namespace}}}
    syncPolicy: {{prune: true, selfHeal: true}}
"""


def app_remote(root: Path, namespace: str) -> Remote:
    remote = Remote(root / "git")
    remote.commit(
        {"app/ns.yaml": namespace_doc(namespace), "app/cm.yaml": configmap(namespace, "v1")}
    )
    return remote


async def test_tunnelled_cluster_converges_parks_and_recovers(
    kit_clusters: list[RunningCluster], keys: Keys, tmp_path: Path
) -> None:
    with pytest.raises(OSError):
        socket.getaddrinfo(HIDDEN, 443)  # only the bastion can resolve the edge apiserver's name
    ns, app = "hub-ssh", "ssh-web"
    kit, direct = kit_clusters[0], kit_clusters[1]
    remote = app_remote(tmp_path, ns)
    settings = hub_settings(tmp_path, breaker=BREAKER)
    settings.config_path.write_text(fleet_yaml(app, remote.url, ns))
    settings.clusters_dir.mkdir()
    bastion = SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"})
    await bastion.start()
    try:
        keys.known_hosts.write_text(bastion.known_hosts_line())
        edge_kubeconfig(
            kit,
            settings.clusters_dir,
            name="edge",
            jumps=[(bastion.port, "fleet")],
            identity=keys.user_file,
            known_hosts=keys.known_hosts,
        )
        drop(direct, settings.clusters_dir)
        hub = Hub(settings)
        hub.tunnel_settings = FAST
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            board = hub.board

            # the hub applies through the tunnel, and only through it
            await until(lambda: _values(kit, direct, ns, ("v1", "v1")), limit=60)
            assert (HIDDEN, kit.port) in bastion.forwards
            await until(lambda: board.clusters["edge"].state == "ready")

            # the bastion dies: the edge cluster is parked; the direct one keeps converging
            await bastion.stop()
            await until(lambda: board.clusters["edge"].state == "parked", limit=20)
            assert "cluster edge" in board.clusters["edge"].error
            assert "unreachable" in board.clusters["edge"].error
            second = remote.commit({"app/cm.yaml": configmap(ns, "v2")})
            assert await push_webhook(port, remote.url) == 200
            await until(lambda: _values(kit, direct, ns, ("v1", "v2")))
            # requests through the dead tunnel fail as ApiError(0), an outage: the breaker opens
            breaker = hub.breakers.for_cluster("edge")
            await until(lambda: breaker.state is not BreakerState.CLOSED, limit=30)
            cause = breaker.status().last_error or ""
            assert "on cluster edge" in cause
            assert unreachable(ApiError(0, "", cause))
            assert board.clusters[direct.name].state == "ready"
            assert board.cell(app, direct.name).revision == second

            # the bastion is back (same port, same host key): recovered with no hub restart
            await bastion.start()
            await until(lambda: _values(kit, direct, ns, ("v2", "v2")), limit=60)
            await until(lambda: board.clusters["edge"].state == "ready", limit=20)
            assert board.clusters["edge"].error == ""
            await until(lambda: board.cell(app, "edge").revision == second)
            hub.stop()
    finally:
        await bastion.stop()


async def test_refused_routes_are_errors_for_their_cluster_alone(
    kit_clusters: list[RunningCluster], keys: Keys, tmp_path: Path
) -> None:
    ns, app = "hub-ssh-refused", "ssh-refused"
    kit, direct = kit_clusters[0], kit_clusters[1]
    remote = app_remote(tmp_path, ns)
    settings = hub_settings(tmp_path, breaker=BREAKER)
    settings.config_path.write_text(fleet_yaml(app, remote.url, ns))
    settings.clusters_dir.mkdir()
    stranger = write_private_key(new_key(), tmp_path / "keys" / "stranger")
    async with SshServer(users={"fleet": keys.user}, hosts={HIDDEN: "127.0.0.1"}) as bastion:
        keys.known_hosts.write_text(bastion.known_hosts_line(key=new_key()))  # a wrong pin
        common = {"jumps": [(bastion.port, "fleet")], "known_hosts": keys.known_hosts}
        edge_kubeconfig(
            kit,
            settings.clusters_dir,
            name="edge-pin",
            identity=keys.user_file,
            **common,  # type: ignore[arg-type]
        )
        good_pin = tmp_path / "known_hosts.good"
        good_pin.write_text(bastion.known_hosts_line())
        edge_kubeconfig(
            kit,
            settings.clusters_dir,
            name="edge-key",
            jumps=[(bastion.port, "fleet")],
            identity=stranger,
            known_hosts=good_pin,
        )
        bad_route = settings.clusters_dir / "edge-route.yaml"
        edge_kubeconfig(
            kit,
            settings.clusters_dir,
            name="edge-route",
            identity=keys.user_file,
            **common,  # type: ignore[arg-type]
        )
        bad_route.write_text(bad_route.read_text().replace("knownHosts:", "knownHostz:"))
        drop(direct, settings.clusters_dir)
        hub = Hub(settings)
        hub.tunnel_settings = FAST
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            board = hub.board
            await until(lambda: _values(kit, direct, ns, (None, "v1")), limit=60)
            await until(lambda: board.clusters["edge-pin"].state == "error", limit=20)
            error = board.clusters["edge-pin"].error
            assert "cluster edge-pin" in error and "host key refused" in error
            await until(lambda: board.clusters["edge-key"].state == "error", limit=20)
            error = board.clusters["edge-key"].error
            assert "cluster edge-key" in error and "user key refused" in error
            assert str(stranger) in error
            route = board.clusters["edge-route"]
            assert route.state == "error"
            assert "cluster edge-route" in route.error and "knownHostz" in route.error
            assert board.clusters[direct.name].state == "ready"
            assert hub.readiness() == (True, "ready")
            assert bastion.forwards == []  # nothing went through a refused route

            # the pin is fixed in its file: the link retries, the cluster converges, no restart
            keys.known_hosts.write_text(bastion.known_hosts_line())
            await until(lambda: _values(kit, direct, ns, ("v1", "v1")), limit=60)
            await until(lambda: board.clusters["edge-pin"].state == "ready", limit=20)
            assert board.clusters["edge-key"].state == "error"  # still the wrong user key
            hub.stop()


async def _values(
    edge: RunningCluster, direct: RunningCluster, namespace: str, wanted: tuple[str | None, ...]
) -> bool:
    return (await value_on(edge, namespace), await value_on(direct, namespace)) == wanted
