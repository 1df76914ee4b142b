"""Entries that reach one API server as one user share its liveness: an answer to one of them is
an answer for all, so a healthy server is probed about once an interval, not once per entry (at
1,000 entries on 4 servers the probes took most of the hub's event loop). When the server hangs,
nobody hears anything and every entry finds it silent by its own probes.

Pure coordination of :class:`~fleet.hub.connections.Connections`' probe rounds: the clusters are
stand-ins whose probe answers or not as the test says (the real probe and fence are tested on
kit clusters in tests/faults/test_hung_cluster.py)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import anyio
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


def _entry(name: str) -> Connection:
    document = {
        "current-context": name,
        "contexts": [{"name": name, "context": {"cluster": "one", "user": "admin"}}],
        "clusters": [{"name": "one", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "admin", "user": {"token": "t"}}],
    }
    file = ClusterFile(
        ref=ClusterRef(name), server="https://127.0.0.1:6443", path=Path(f"{name}.yaml"),
        document=document,
    )  # fmt: skip
    return Connection(file=file, identity=configured.identity(file))


async def test_an_answer_to_one_entry_is_liveness_for_all_and_a_hang_for_each() -> None:
    async with anyio.create_task_group() as group:
        connections = Connections(
            group=group,
            limits=Limits(clock=RealClock()),
            on_status=lambda _name, _status: None,
            probe=ProbeSettings(interval=3.0, failures=2),
        )
        server = _Server()
        entries = [_entry(f"alias-{i}") for i in range(5)]
        assert len({e.identity for e in entries}) == 1, "one server, one user: one identity"
        clients = {e.name: _Client(e.name, server) for e in entries}

        async def round_of(entry: Connection) -> float:
            client = cast(apply.Cluster, clients[entry.name])
            return await connections._probe_round(entry, client)

        for entry in entries:  # each probes once at first, knowing nothing yet
            assert await round_of(entry) == 3.0
        assert len(server.probes) == 5
        assert all(e.liveness.state == "answering" for e in entries)

        server.probes.clear()
        for client in clients.values():  # long ago, for every entry
            client.last_answer = -float("inf")
        connections._heard.clear()
        assert await round_of(entries[0]) == 3.0  # the first to look probes...
        waits = [await round_of(entry) for entry in entries[1:]]
        assert server.probes == ["alias-0"], "...and the others take its answer as theirs"
        assert all(0 < w <= 3.0 for w in waits)

        server.hung = True  # nobody hears anything any more
        for entry in entries:
            clients[entry.name].last_answer = -float("inf")
        connections._heard.clear()  # as if the last answer were long ago
        for entry in entries:
            assert await round_of(entry) == 0.0  # one miss: probe again at once
            assert await round_of(entry) == 3.0  # two: silent
        assert sorted(set(server.probes)) == sorted(clients)
        assert all(e.liveness.state == "silent" for e in entries)
        assert all(c.fenced for c in clients.values())
        group.cancel_scope.cancel()
