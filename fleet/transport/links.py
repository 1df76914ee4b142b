"""One SSH link: a chain of asyncssh connections through every hop of a route, kept open.

The model: a :class:`Link` is a supervisor task that opens the chain (hop 1, then hop 2 tunnelled
over hop 1, ...), marks itself ``up``, waits until the last connection closes (a drop, or keepalive
giving up on a silent peer), and opens it again after a backoff. Several clusters behind the same
hops with the same credentials share one link; the tunnel manager owns links and cancels one when
its last cluster leaves, which closes the chain.

Guarantees:

- Host keys are pinned: a host key not in ``knownHosts`` is refused, unless the route says
  ``acceptNewHostKeys`` *and* the file has no entry for that host at all (then the key is added;
  a changed key is always refused). The files are read on every attempt, so fixing them is enough.
- A refusal (host key, user key, unreadable key or known_hosts file) is ``refused``: it is retried
  at the backoff cap only, since nothing but a change of those files can help. Other failures are
  ``reconnecting`` and retried with exponential backoff and jitter, starting at once after a drop.
- Every error names the hop and the cause; no key material or passphrase is ever logged.
"""

from __future__ import annotations

import logging

import anyio
import asyncssh

from fleet.transport.linkstate import (
    LinkError,
    LinkRefused,
    LinkSettings,
    LinkStatus,
    Sleep,
    State,
)
from fleet.transport.routes import Hop, SshRoute

__all__ = ["Link", "LinkError", "LinkRefused", "LinkSettings", "LinkStatus", "Sleep"]

log = logging.getLogger(__name__)


class Link:
    """A supervised SSH connection chain for `route`; run :meth:`run` in a task group."""

    def __init__(self, route: SshRoute, *, settings: LinkSettings, sleep: Sleep = anyio.sleep):
        self.route = route
        self._settings = settings
        self._sleep = sleep
        self._conn: asyncssh.SSHClientConnection | None = None
        self._status = LinkStatus(state="connecting", error=None, failures=0, attempting=True)
        self._changed = anyio.Event()
        self._lost: str | None = None
        self.connects = 0  # successful connections made (read by tests and metrics)

    @property
    def status(self) -> LinkStatus:
        return self._status

    async def connection(self, *, time_limit: float) -> asyncssh.SSHClientConnection | None:
        """The live connection; waits at most `time_limit` for an attempt in flight, else None."""
        with anyio.move_on_after(time_limit):
            while True:
                if self._conn is not None and self._status.state == "up":
                    return self._conn
                if not self._status.attempting:
                    return None  # known down, waiting out a backoff: fail fast
                await self._changed.wait()
        return None

    async def run(self) -> None:
        """Connect, wait for the drop, reconnect; forever, until cancelled."""
        failures = 0
        ever_up = False
        while True:
            self._set(attempting=True)
            try:
                with anyio.fail_after(self._settings.connect_timeout * len(self.route.jumps)):
                    chain = await self._open()
            except TimeoutError:
                error: LinkError | LinkRefused = LinkError(f"ssh {self.route}: connect timed out")
            except (LinkError, LinkRefused) as exc:
                error = exc
            except Exception as exc:  # a surprise from a library must not end the supervisor
                log.exception("event=ssh_connect_bug route=%s", self.route)
                error = LinkError(f"ssh {self.route}: unexpected {type(exc).__name__}: {exc}")
            else:
                failures, ever_up = 0, True
                await self._hold(chain)
                self._set(state="reconnecting", error=f"ssh {self.route}: {self._lost}")
                continue  # a drop is retried at once; failures back off from there
            failures += 1
            refused = isinstance(error, LinkRefused)
            state: State = "refused" if refused else "reconnecting" if ever_up else "connecting"
            self._set(state=state, error=str(error), failures=failures, attempting=False)
            delay = self._settings.delay(failures, refused=refused)
            log.warning(
                "event=ssh_down route=%s state=%s failures=%d retry_in_s=%.2f error=%s",
                self.route,
                state,
                failures,
                delay,
                error,
            )
            await self._sleep(delay)

    async def _hold(self, chain: list[asyncssh.SSHClientConnection]) -> None:
        self._lost = None
        self._conn = chain[-1]
        self.connects += 1
        self._set(state="up", error=None, failures=0, attempting=False)
        log.info("event=ssh_up route=%s connects=%d", self.route, self.connects)
        try:
            await chain[-1].wait_closed()
        finally:
            self._conn = None
            for conn in reversed(chain):
                conn.close()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                for conn in reversed(chain):
                    await conn.wait_closed()
        self._lost = self._lost or "connection closed"
        log.warning("event=ssh_lost route=%s cause=%s", self.route, self._lost)

    async def _open(self) -> list[asyncssh.SSHClientConnection]:
        keys = self._client_keys()
        chain: list[asyncssh.SSHClientConnection] = []
        try:
            for index, hop in enumerate(self.route.jumps):
                chain.append(await self._connect(hop, index=index, keys=keys, over=chain))
        except BaseException:
            for conn in reversed(chain):
                conn.close()
            raise
        return chain

    async def _connect(
        self,
        hop: Hop,
        *,
        index: int,
        keys: list[asyncssh.SSHKey] | None,
        over: list[asyncssh.SSHClientConnection],
    ) -> asyncssh.SSHClientConnection:
        where = f"ssh hop {index + 1}/{len(self.route.jumps)} {hop}"
        known = self.route.known_hosts
        try:
            conn = await asyncssh.connect(
                hop.host,
                hop.port,
                tunnel=over[-1] if over else (),
                username=hop.user,
                client_keys=keys if keys is not None else (),
                agent_path=None if keys is not None else (),
                known_hosts=self._known_hosts(where),
                client_factory=lambda: _Client(self, hop),
                config=[],
                password=None,
                kbdint_auth=False,
                gss_auth=False,
                preferred_auth="publickey",
                keepalive_interval=self._settings.keepalive_interval,
                keepalive_count_max=self._settings.keepalive_count_max,
                login_timeout=self._settings.connect_timeout,
                connect_timeout=self._settings.connect_timeout,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise LinkRefused(
                f"{where}: host key refused, unknown or changed (pinned in {known}): {exc.reason}"
            ) from None
        except asyncssh.PermissionDenied as exc:
            path = self.route.identity_file
            what = f"identityFile {path}" if path else "the agent's keys"
            raise LinkRefused(f"{where}: user key refused ({what}): {exc.reason}") from None
        except asyncssh.Error as exc:
            raise LinkError(f"{where}: {type(exc).__name__}: {exc.reason}") from None
        except OSError as exc:
            raise LinkError(f"{where}: {exc.strerror or exc}") from None
        log.debug("event=ssh_hop_up hop=%s index=%d", hop, index)
        return conn

    def _client_keys(self) -> list[asyncssh.SSHKey] | None:
        path = self.route.identity_file
        if path is None:
            return None
        try:
            return [asyncssh.read_private_key(path)]
        except (OSError, asyncssh.KeyImportError) as exc:
            cause = exc.strerror if isinstance(exc, OSError) else "not a usable private key"
            raise LinkRefused(
                f"ssh {self.route}: cannot read identityFile {path}: {cause}"
            ) from None

    def _known_hosts(self, where: str) -> asyncssh.SSHKnownHosts:
        path = self.route.known_hosts
        try:
            return asyncssh.read_known_hosts(str(path))
        except FileNotFoundError:
            if self.route.accept_new_host_keys:
                return asyncssh.import_known_hosts("")
            raise LinkRefused(f"{where}: knownHosts file {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise LinkRefused(f"{where}: cannot read knownHosts {path}: {exc}") from None

    def _set(
        self,
        *,
        state: State | None = None,
        error: str | None = None,
        failures: int | None = None,
        attempting: bool | None = None,
    ) -> None:
        old = self._status
        self._status = LinkStatus(
            state=state or old.state,
            error=error if state is not None else old.error,
            failures=old.failures if failures is None else failures,
            attempting=old.attempting if attempting is None else attempting,
        )
        self._changed.set()
        self._changed = anyio.Event()

    def note_lost(self, hop: Hop, exc: Exception | None) -> None:
        """Called by a hop's client when its connection ends; the first end is the cause."""
        if self._lost is None:
            cause = f"{type(exc).__name__}: {exc}" if exc else "closed by the peer"
            self._lost = f"connection to {hop} lost ({cause})"


class _Client(asyncssh.SSHClient):
    """Per-hop callbacks: record why a connection dropped; accept a new host key if allowed."""

    def __init__(self, link: Link, hop: Hop) -> None:
        self._link = link
        self._hop = hop

    def connection_lost(self, exc: Exception | None) -> None:
        self._link.note_lost(self._hop, exc)

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        route = self._link.route
        if not route.accept_new_host_keys:
            return False
        path = route.known_hosts
        try:
            known = asyncssh.read_known_hosts(str(path)) if path.exists() else None
        except (OSError, ValueError):
            return False
        if known is not None and any(known.match(host, addr, port)[:3]):
            return False  # the host is known with another key: a changed key is never accepted
        name = host if port == 22 else f"[{host}]:{port}"
        algorithm_and_key = " ".join(key.export_public_key("openssh").decode().split()[:2])
        line = f"{name} {algorithm_and_key}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        log.warning("event=ssh_host_key_added host=%s port=%d file=%s", host, port, path)
        return True
