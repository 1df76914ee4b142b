"""SSH links without a cluster: direct clusters, the agent, unreadable files, release and exit."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from fleet.config import clusters
from fleet.config.clusters import ClusterFile
from fleet.transport import LinkRefused, Tunnels
from tests.transport.edge import FAST, HIDDEN, eventually
from tests.transport.sshd import SshServer, User, new_key, write_private_key

pytestmark = pytest.mark.anyio


def kubeconfig(directory: Path, name: str, ssh: dict[str, Any] | None) -> ClusterFile:
    extension: dict[str, Any] = {"labels": {"env": "edge"}}
    if ssh is not None:
        extension["ssh"] = ssh
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"https://{HIDDEN}:6443"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [
            {
                "name": "x",
                "context": {
                    "cluster": "c",
                    "user": "u",
                    "extensions": [{"name": "fleet", "extension": extension}],
                },
            }
        ],
        "current-context": "x",
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return clusters.read(path)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Path]:
    """A real ssh-agent on a socket of its own, stopped after the test."""
    if shutil.which("ssh-agent") is None:
        pytest.skip("needs ssh-agent")
    socket_path = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.PIPE)
    try:
        for _ in range(200):
            if socket_path.exists():
                break
            time.sleep(0.01)
        yield socket_path
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def test_direct_cluster_has_its_own_server(tmp_path: Path) -> None:
    direct = kubeconfig(tmp_path, "plain", None)
    async with Tunnels(FAST) as tunnels:
        endpoint = await tunnels.endpoint(direct)
        assert (endpoint.url, endpoint.tls_server_name, endpoint.via) == (direct.server, None, None)
        assert tunnels.state("plain").state == "direct"
        assert await tunnels.wait_ready("plain", time_limit=1) == endpoint
        assert tunnels.link_count() == 0
        await tunnels.release("plain")
        assert tunnels.states() == {}


async def test_unreadable_key_or_known_hosts_is_refused(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = write_private_key(new_key(), tmp_path / "key")
    cases = {
        "nokey": ({"identityFile": str(tmp_path / "missing")}, "cannot read identityFile"),
        "nohosts": ({"identityFile": str(key)}, f"knownHosts file {known} does not exist"),
    }
    async with Tunnels(FAST) as tunnels:
        for name, (credential, message) in cases.items():
            ssh = {
                "jumps": [{"host": "127.0.0.1", "port": 9, "user": "u"}],
                "knownHosts": str(known),
            }
            await tunnels.endpoint(kubeconfig(tmp_path, name, ssh | credential))
            with pytest.raises(LinkRefused, match=f"cluster {name}: .*{message}"):
                await tunnels.wait_ready(name, time_limit=10)


async def test_agent_keys_and_route_changes(
    tmp_path: Path, agent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    key_file = write_private_key(key, tmp_path / "agent_key")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    await anyio.run_process(["ssh-add", "-q", str(key_file)])
    key_file.unlink()  # only the agent holds it now
    user = User(keys=(key.convert_to_public(),), forward=True)
    async with SshServer(users={"fleet": user}) as one, SshServer(users={"fleet": user}) as two:
        known = tmp_path / "known_hosts"
        known.write_text(one.known_hosts_line() + two.known_hosts_line())

        def route(server: SshServer) -> dict[str, Any]:
            hop = {"host": "127.0.0.1", "port": server.port, "user": "fleet"}
            return {"jumps": [hop], "agent": True, "knownHosts": str(known)}

        async with Tunnels(FAST) as tunnels:
            first = await tunnels.endpoint(kubeconfig(tmp_path, "edge", route(one)))
            await tunnels.wait_ready("edge", time_limit=20)
            assert one.active == 1
            # the file changes to another bastion: a new link, the old one closes
            second = await tunnels.endpoint(kubeconfig(tmp_path, "edge", route(two)))
            assert second.via != first.via and tunnels.link_count() == 1
            await tunnels.wait_ready("edge", time_limit=20)
            assert two.active == 1
            await eventually(lambda: one.active == 0, seconds=5)
        await eventually(lambda: two.active == 0, seconds=5)  # leaving the block closes links
