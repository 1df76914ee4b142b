"""A real SSH server for tests: asyncssh's server in the test's event loop, on 127.0.0.1.

It has its own host key, a set of users each with authorized public keys and rights: ``forward``
(direct-tcpip channels, i.e. ``ssh -L`` and fleet's tunnels) and ``git`` (``exec`` of
``git-upload-pack <repo>``, run for real on a bare repository under ``git_root``). Anything else is
refused. ``hosts`` maps names only this "jump host" can resolve (``kube.edge.internal``) to real
addresses, so a test can build a kubeconfig whose server is reachable through the tunnel alone.

:meth:`SshServer.stop` closes the listener and aborts every connection (a crash, as seen from the
client); :meth:`SshServer.start` brings it back on the same port with the same host key.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
import asyncssh


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def write_private_key(key: asyncssh.SSHKey, path: Path) -> Path:
    """Write `key` in OpenSSH format, mode 0600 (as ssh insists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.export_private_key("openssh"))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class User:
    keys: tuple[asyncssh.SSHKey, ...]
    forward: bool = False
    git: bool = False


@dataclass
class SshServer:
    """An SSH server on 127.0.0.1; use ``async with``, or :meth:`start` and :meth:`stop`."""

    users: Mapping[str, User]
    host_key: asyncssh.SSHKey = field(default_factory=new_key)
    hosts: Mapping[str, str] = field(default_factory=dict)
    git_root: Path | None = None
    port: int = 0
    forwards: list[tuple[str, int]] = field(default_factory=list)
    connections_seen: int = 0
    _server: asyncssh.SSHAcceptor | None = None
    _conns: set[asyncssh.SSHServerConnection] = field(default_factory=set)

    listen_host: str = "127.0.0.1"

    def public_host_key(self, key: asyncssh.SSHKey | None = None) -> str:
        """``algorithm base64`` of this server's host key (or of `key`)."""
        return " ".join((key or self.host_key).export_public_key("openssh").decode().split()[:2])

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        """A known_hosts line pinning this server's host key (or `key`) for its address."""
        return f"[{self.listen_host}]:{self.port} {self.public_host_key(key)}\n"

    def bound(self, host: str) -> Self:
        """This server, listening on `host` instead of 127.0.0.1 (another loopback address)."""
        self.listen_host = host
        return self

    @property
    def active(self) -> int:
        return len(self._conns)

    async def start(self) -> None:
        self._server = await asyncssh.create_server(
            lambda: _Server(self),
            self.listen_host,
            self.port,
            server_host_keys=[self.host_key],
            process_factory=self._process,
            encoding=None,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            config=[],
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and abort every connection, as a crash would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        await anyio.sleep(0.05)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        user = self.users.get(str(process.get_extra_info("username")))
        argv = shlex.split(process.command or "")
        repo = self._repo(argv[1]) if len(argv) == 2 else None
        if user is None or not user.git or argv[:1] != ["git-upload-pack"] or repo is None:
            process.stderr.write(b"fatal: only git-upload-pack of a known repository\n")
            process.exit(128)
            return
        env = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.git_root)}
        if "GIT_PROTOCOL" in process.env:
            env["GIT_PROTOCOL"] = str(process.env["GIT_PROTOCOL"])
        async with await anyio.open_process(["git-upload-pack", str(repo)], env=env) as git:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_feed, process.stdin, git.stdin)
                async with anyio.create_task_group() as out:
                    out.start_soon(_drain, git.stdout, process.stdout)
                    out.start_soon(_drain, git.stderr, process.stderr)
                tg.cancel_scope.cancel()
            code = await git.wait()
        process.exit(code)

    def _repo(self, name: str) -> Path | None:
        if self.git_root is None:
            return None
        root = self.git_root.resolve()
        path = (root / name.lstrip("/")).resolve()
        if path != root and root not in path.parents:
            return None
        return path if (path / "HEAD").exists() else None


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: SshServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None
        self._user: User | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._conns.add(conn)
        self._owner.connections_seen += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._conns.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        user = self._owner.users.get(username)
        if user is None or key not in user.keys:
            return False
        self._user = user
        return True

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> asyncssh.SSHTCPSession[bytes] | bool:
        if self._user is None or not self._user.forward or self._conn is None:
            return False
        self._owner.forwards.append((dest_host, dest_port))
        host = self._owner.hosts.get(dest_host, dest_host)
        return self._conn.forward_connection(host, dest_port)  # type: ignore[return-value]

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # no remote forwarding, for anyone


async def _feed(source: asyncssh.SSHReader[bytes], sink: anyio.abc.ByteSendStream | None) -> None:
    if sink is None:
        return
    try:
        while chunk := await source.read(65536):
            await sink.send(chunk)
        await sink.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, asyncssh.Error):
        pass


async def _drain(
    source: anyio.abc.ByteReceiveStream | None, sink: asyncssh.SSHWriter[bytes]
) -> None:
    if source is None:
        return
    async for chunk in source:
        sink.write(chunk)
        await sink.drain()
