"""Git over SSH through fleet's sources API: real git, real OpenSSH client, real asyncssh server.

The server runs ``git-upload-pack`` for the ``git`` user's deploy key; fleet's
:class:`~fleet.sources.Sources` reaches it with the system git and ``GIT_SSH_COMMAND`` (deploy key,
``IdentitiesOnly``, pinned ``known_hosts``, ``StrictHostKeyChecking=yes``), as configured in its
credentials file. The key material never reaches a command line: only its path does.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.errors import StalledError
from fleet.sources import Sources, SourceSettings
from tests.sources.gitkit import Remote
from tests.transport.sshd import SshServer, User, new_key, write_private_key

SCP_HOST = "127.0.0.2"  # all of 127/8 is loopback on Linux

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client (ssh)"),
]


@dataclass
class Setup:
    root: Path
    remote: Remote
    deploy_key: Path
    user: User
    known_hosts: Path

    def sources(self, *, key: Path | None = None, host: str = "127.0.0.1", port: int) -> Sources:
        credentials = self.root / "credentials.yaml"
        credentials.write_text(
            "credentials:\n"
            f"  - url: ssh://git@{host}:{port}/\n"
            f"    sshKey: {key or self.deploy_key}\n"
            f"    knownHosts: {self.known_hosts}\n"
        )
        settings = SourceSettings(
            cache_dir=self.root / "cache", credentials_file=credentials, git_timeout=30
        )
        return Sources(settings)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    remote = Remote(tmp_path / "repos", name="gitops")
    deploy = new_key()
    return Setup(
        root=tmp_path,
        remote=remote,
        deploy_key=write_private_key(deploy, tmp_path / "keys" / "deploy"),
        user=User(keys=(deploy.convert_to_public(),), git=True),
        known_hosts=tmp_path / "known_hosts",
    )


async def test_fetch_over_ssh_with_a_deploy_key(setup: Setup) -> None:
    sha = setup.remote.commit({"app/cm.yaml": "kind: ConfigMap\n"})
    async with SshServer(users={"git": setup.user}, git_root=setup.root / "repos") as server:
        setup.known_hosts.write_text(server.known_hosts_line())
        sources = setup.sources(port=server.port)
        url = f"ssh://git@127.0.0.1:{server.port}/gitops.git"
        snapshot = await sources.snapshot(url, "main")
        assert snapshot.commit == sha
        assert await snapshot.read("app/cm.yaml") == b"kind: ConfigMap\n"
        newer = setup.remote.commit({"app/cm.yaml": "kind: ConfigMap # 2\n"})
        assert await sources.refresh(url)
        assert (await sources.snapshot(url, "main")).commit == newer
    assert server.forwards == []  # the git user execs upload-pack, nothing else


def can_bind(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not can_bind(SCP_HOST, 22), reason=f"needs to bind {SCP_HOST}:22 (root)")
async def test_scp_like_url(setup: Setup) -> None:
    """``git@host:path`` has no port, so this server listens on port 22 of another loopback."""
    sha = setup.remote.commit({"a.yaml": "a: 1\n"})
    server = SshServer(users={"git": setup.user}, git_root=setup.root / "repos", port=22)
    async with server.bound(SCP_HOST):
        setup.known_hosts.write_text(f"{SCP_HOST} {server.public_host_key()}\n")
        sources = setup.sources(host=SCP_HOST, port=22)
        snapshot = await sources.snapshot(f"git@{SCP_HOST}:gitops.git", "main")
        assert snapshot.commit == sha
        assert await snapshot.read("a.yaml") == b"a: 1\n"


async def test_wrong_deploy_key_is_refused(setup: Setup) -> None:
    setup.remote.commit({"a.yaml": "a: 1\n"})
    stranger = write_private_key(new_key(), setup.root / "keys" / "stranger")
    async with SshServer(users={"git": setup.user}, git_root=setup.root / "repos") as server:
        setup.known_hosts.write_text(server.known_hosts_line())
        sources = setup.sources(key=stranger, port=server.port)
        with pytest.raises(StalledError, match="access refused"):
            await sources.snapshot(f"ssh://git@127.0.0.1:{server.port}/gitops.git", "main")


async def test_unknown_or_changed_host_key_is_refused(setup: Setup) -> None:
    setup.remote.commit({"a.yaml": "a: 1\n"})
    async with SshServer(users={"git": setup.user}, git_root=setup.root / "repos") as server:
        url = f"ssh://git@127.0.0.1:{server.port}/gitops.git"
        for pinned in ("", server.known_hosts_line(key=new_key())):  # unknown, then changed
            setup.known_hosts.write_text(pinned)
            sources = setup.sources(port=server.port)
            with pytest.raises(StalledError, match="access refused"):
                await sources.snapshot(url, "main")
        assert server.connections_seen == 2  # each attempt reached the server, and was dropped
