"""Entries that reach one API server as one user share its liveness: one probe loop per identity,
whose probe speaks for every entry, so a healthy server is probed about once an interval however
many entries reach it (at 1,000 entries on 4 servers per-entry probes took most of the hub's event
loop; at 10,000, per-entry loops most of the idle hub). When the server hangs, nobody hears
anything and every entry counts the misses and is found silent, fenced, named in its cause.

Pure coordination of :class:`~fleet.hub.connections.Connections`' probe rounds: the clusters are
stand-ins whose probe answers or not as the test says (the real probe and fence are tested on
kit clusters in tests/faults/test_hung_cluster.py)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import anyio
import anyio.abc
import pytest

from fleet import apply
from fleet.config.clusters import ClusterFile
from fleet.hub import configured
from fleet.hub.connections import Connection, Connections, ProbeSettings
from fleet.runtime import Limits
from fleet.runtime.clock import RealClock
from fleet.types import ClusterRef

pytestmark = pytest.mark.anyio


class _Server:
    def __init__(self) -> None:
        self.hung = False
        self.probes: list[str] = []


class _Client:
    """What a probe round uses of a cluster client."""

    def __init__(self, name: str, server: _Server) -> None:
        self.name = name
        self.server = server
        self.last_answer = -float("inf")
        self.fenced = ""

    async def probe(self, _path: str) -> str:
        self.server.probes.append(self.name)
        if self.server.hung:
            return f"GET /readyz on cluster {self.name}: no answer within 3.0s"
        self.last_answer = anyio.current_time()
        return ""

    def fence(self, cause: str) -> int:
        self.fenced = cause
        return 0

    def unfence(self) -> None:
        self.fenced = ""


def _entry(name: str, *, server: str = "https://127.0.0.1:6443") -> Connection:
    document = {
        "current-context": name,
        "contexts": [{"name": name, "context": {"cluster": "one", "user": "admin"}}],
        "clusters": [{"name": "one", "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {"token": "t"}}],
    }
    file = ClusterFile(
        ref=ClusterRef(name), server=server, path=Path(f"{name}.yaml"), document=document
    )
    return Connection(file=file, identity=configured.identity(file))


def connections_in(group: anyio.abc.TaskGroup, *, interval: float) -> Connections:
    """A hub's connections, probing every `interval` s, two misses to silent."""
    return Connections(
        group=group,
        limits=Limits(clock=RealClock()),
        on_status=lambda _name, _status: None,
        probe=ProbeSettings(interval=interval, failures=2),
    )


def joined(connections: Connections, entry: Connection, client: object) -> None:
    """`entry` connected through `client` (a stand-in), a member of its identity's loop."""
    entry.client = entry.cluster = cast(apply.Cluster, client)
    connections.by_name[entry.name] = entry
    connections._join(entry)


async def test_an_answer_to_one_entry_is_liveness_for_all_and_a_hang_for_each() -> None:
    async with anyio.create_task_group() as group:
        connections = connections_in(group, interval=3.0)
        server = _Server()
        entries = [_entry(f"alias-{i}") for i in range(5)]
        assert len({e.identity for e in entries}) == 1, "one server, one user: one identity"
        clients = {e.name: _Client(e.name, server) for e in entries}
        for entry in entries:
            joined(connections, entry, clients[entry.name])
        key = entries[0].identity
        members = connections._members[key]
        assert list(members.connections) == [e.name for e in entries]

        # knowing nothing yet, one round probes once, and its answer counts for every entry
        assert await connections._identity_round(key, members) == 3.0
        assert server.probes == ["alias-0"]
        assert all(e.liveness.state == "answering" for e in entries)
        server.probes.clear()
        assert 0 < await connections._identity_round(key, members) <= 3.0
        assert server.probes == [], "answered lately: nothing to ask"
        late = _entry("alias-5")  # joins a server heard from lately: answering, no probe
        joined(connections, late, _Client(late.name, server))
        clients[late.name] = cast(_Client, late.client)
        entries.append(late)
        assert 0 < await connections._identity_round(key, members) <= 3.0
        assert server.probes == [] and late.liveness.state == "answering"

        server.hung = True  # nobody hears anything any more
        for client in clients.values():
            client.last_answer = -float("inf")
        connections._heard.clear()  # as if the last answer were long ago
        assert await connections._identity_round(key, members) == 0.0  # one miss: again at once
        assert not any(c.fenced for c in clients.values())
        assert await connections._identity_round(key, members) == 3.0  # two: silent
        assert server.probes == ["alias-0", "alias-0"], "one probe a round, for all"
        assert all(e.liveness.state == "silent" for e in entries)
        assert all(c.fenced for c in clients.values()), "each entry's own client is fenced"
        assert entries[0].liveness.cause.startswith("GET /readyz on cluster alias-0")
        for entry in entries[1:]:  # named first, then the entry the probe went through
            assert entry.liveness.cause.startswith(
                f"cluster {entry.name} (its API server probed through alias-0): "
            )
        reported = {r.cluster: r.state for r in connections.reach()}
        assert reported == {e.name: "down" for e in entries}

        server.hung = False  # the server answers again: every entry recovers, reported once
        assert await connections._identity_round(key, members) == 3.0
        assert all(e.liveness.state == "answering" for e in entries)
        assert not any(c.fenced for c in clients.values())
        recovered = connections.reach()
        assert sorted(r.cluster for r in recovered if r.recovered) == sorted(clients)
        assert connections.reach() == []
        group.cancel_scope.cancel()


async def answering(entry: Connection) -> None:
    for _ in range(500):  # 5 s: a safety limit, not a measure of speed
        if entry.liveness.state == "answering":
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"{entry.name} is {entry.liveness.state}")


async def test_the_loop_ends_with_its_last_member_and_a_new_member_starts_another() -> None:
    async with anyio.create_task_group() as group:
        connections = connections_in(group, interval=0.2)
        server = _Server()
        first, second = _entry("a"), _entry("b")
        joined(connections, first, _Client("a", server))
        await answering(first)  # the loop's first round, at once
        joined(connections, second, _Client("b", server))
        await answering(second)  # a joiner wakes the loop
        key = first.identity
        connections._leave(first)
        assert list(connections._members[key].connections) == ["b"]
        connections._leave(second)
        assert key not in connections._members
        await anyio.sleep(0.3)
        probes = len(server.probes)
        await anyio.sleep(0.5)
        assert len(server.probes) == probes, "no member, no probe"
        again = _entry("c")
        joined(connections, again, _Client("c", server))
        await answering(again)
        assert server.probes[-1] == "c"
        group.cancel_scope.cancel()
