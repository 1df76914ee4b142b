"""Entries sharing an API server probe it once per interval, and each is still found silent.

Before the probes were one per identity, every entry of one server probed when its round fell
due (at 1,000 entries on 4 servers, 333 probes a second, half the idle hub's CPU); before the
loop was one per identity, every entry's loop still woke each interval (at 10,000 entries, most
of the idle hub). Here the identity's real loop (``Connections._watch_identity``, started by the
first entry to join) runs against a stand-in server whose probe takes a little while, as a real
one does: the probes it counts must be about one per interval for the whole identity, and when
it hangs, every entry must still be found silent and fenced on its own. And a probe answered
late is no miss while the server answers other requests.
"""

from __future__ import annotations

from typing import cast

import anyio
import pytest

from fleet import apply
from fleet.hub.connections import _Members
from tests.hub.test_liveness_sharing import _entry, connections_in, joined

pytestmark = pytest.mark.anyio

_INTERVAL = 0.3
_WINDOW = 1.5
_ENTRIES = 20


class _Server:
    def __init__(self) -> None:
        self.hung = False
        self.probes: list[str] = []


class _Client:
    """What a probe round uses of a cluster client; its probe takes 50 ms to answer."""

    def __init__(self, name: str, server: _Server) -> None:
        self.name = name
        self.server = server
        self.last_answer = -float("inf")
        self.fenced = ""

    async def probe(self, _path: str) -> str:
        self.server.probes.append(self.name)
        await anyio.sleep(0.05)
        if self.server.hung:
            return f"GET /readyz on cluster {self.name}: no answer within 0.05s"
        self.last_answer = anyio.current_time()
        return ""

    def fence(self, cause: str) -> int:
        self.fenced = cause
        return 0

    def unfence(self) -> None:
        self.fenced = ""


async def test_concurrent_rounds_of_one_identity_probe_once_per_interval() -> None:
    server = _Server()
    entries = [_entry(f"alias-{i:02d}") for i in range(_ENTRIES)]
    assert len({e.identity for e in entries}) == 1, "one server, one user: one identity"
    clients = {e.name: _Client(e.name, server) for e in entries}
    async with anyio.create_task_group() as group:
        connections = connections_in(group, interval=_INTERVAL)
        for entry in entries:
            joined(connections, entry, clients[entry.name])
        await anyio.sleep(_WINDOW)
        healthy = len(server.probes)
        assert all(e.liveness.state == "answering" for e in entries)

        server.hung = True
        for _ in range(600):  # 30 s: a safety limit, not a measure of speed
            if all(e.liveness.state == "silent" for e in entries):
                break
            await anyio.sleep(0.05)
        assert all(e.liveness.state == "silent" for e in entries)
        assert all(c.fenced for c in clients.values()), "each entry's own client is fenced"
        causes = {e.name: e.liveness.cause for e in entries}
        group.cancel_scope.cancel()

    # one probe per interval for the identity (plus the first round and a round of slack), where
    # one per entry per interval would be _ENTRIES times as many
    bound = int(_WINDOW / _INTERVAL) + 2
    assert healthy <= bound, f"{healthy} probes in {_WINDOW}s of {_ENTRIES} entries"
    assert healthy >= 1
    for name, cause in causes.items():
        assert cause.startswith(f"cluster {name}") or f"on cluster {name}:" in cause, cause


class _BusyClient(_Client):
    """Its probe's answer comes too late, while the server answers the entry's other requests."""

    async def probe(self, _path: str) -> str:
        self.server.probes.append(self.name)
        await anyio.sleep(0.05)
        self.last_answer = anyio.current_time()  # another request of the entry was answered
        return f"GET /readyz on cluster {self.name}: no answer within 0.05s"


async def test_a_late_probe_is_no_miss_while_the_server_answers_other_requests() -> None:
    server = _Server()
    entry = _entry("busy")
    busy = _BusyClient(entry.name, server)
    other = _entry("quiet", server="https://127.0.0.1:6444")  # another server: its own loop
    quiet = _Client("quiet", server)  # hung: the late probe, nothing else
    async with anyio.create_task_group() as group:
        connections = connections_in(group, interval=_INTERVAL)
        for each, client in ((entry, busy), (other, quiet)):
            each.client = cast(apply.Cluster, client)
            connections._members[each.identity] = _Members(connections={each.name: each})
        for _ in range(3):
            busy.last_answer = -float("inf")
            connections._heard.clear()
            await connections._identity_round(entry.identity, connections._members[entry.identity])
        server.hung = True
        for _ in range(3):
            connections._heard.clear()
            await connections._identity_round(other.identity, connections._members[other.identity])
        group.cancel_scope.cancel()
    assert len(server.probes) == 6, "each round did probe"
    assert entry.liveness.state == "answering" and not busy.fenced
    assert other.liveness.state == "silent" and quiet.fenced, "no other answer: silent"


class _LateClient(_Client):
    """Its probe's answer comes too late, while another entry of its server is answered."""

    def __init__(self, name: str, server: _Server, *, meanwhile: _Client) -> None:
        super().__init__(name, server)
        self.meanwhile = meanwhile

    async def probe(self, _path: str) -> str:
        self.server.probes.append(self.name)
        await anyio.sleep(0.05)
        self.meanwhile.last_answer = anyio.current_time()
        return f"GET /readyz on cluster {self.name}: no answer within 0.05s"


async def test_a_late_probe_is_no_miss_while_the_server_answers_another_entry() -> None:
    server = _Server()
    late, answered = _entry("late"), _entry("answered")
    other = _Client(answered.name, server)
    client = _LateClient(late.name, server, meanwhile=other)
    late.client = cast(apply.Cluster, client)
    answered.client = cast(apply.Cluster, other)
    async with anyio.create_task_group() as group:
        connections = connections_in(group, interval=_INTERVAL)
        members = _Members(connections={late.name: late, answered.name: answered})
        connections._members[late.identity] = members
        for _ in range(3):
            connections._heard.clear()
            client.last_answer = other.last_answer = -float("inf")
            await connections._identity_round(late.identity, members)
        group.cancel_scope.cancel()
    assert server.probes == ["late"] * 3
    assert late.liveness.state == "answering" and not client.fenced
    assert answered.liveness.state == "answering" and not other.fenced
