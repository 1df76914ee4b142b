"""The SSH route of a cluster, read from its kubeconfig's ``fleet`` extension (pure, no I/O).

A cluster the hub cannot reach directly names the SSH hops that can::

    extensions:
    - name: fleet
      extension:
        labels: {env: edge}
        ssh:
          jumps: [{host: bastion.example.com, port: 22, user: fleet}]   # one or more hops, in order
          identityFile: /etc/fleet/keys/edge      # or `agent: true` (keys of $SSH_AUTH_SOCK)
          knownHosts: /etc/fleet/known_hosts      # required: host keys are pinned
          acceptNewHostKeys: false                # true: trust a host *absent* from knownHosts once

The API server is then dialled, from the last hop, at the host and port of the kubeconfig's
``server`` URL, and TLS is verified against that same host (or the cluster's ``tls-server-name``).
Relative paths are relative to the kubeconfig's directory. Every error is a :class:`ConfigError`
naming the file and the field; nothing here reads a key or echoes a secret.

Two routes with the same hops and credentials have the same :attr:`SshRoute.key`: the clusters
behind them share one SSH connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError

__all__ = ["ApiTarget", "Hop", "SshRoute", "api_target", "parse_route"]

_SSH_FIELDS = {"jumps", "user", "identityFile", "agent", "knownHosts", "acceptNewHostKeys"}
_HOP_FIELDS = {"host", "port", "user"}
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Hop:
    """One SSH server on the way, as ``user@host:port``."""

    host: str
    port: int
    user: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


@dataclass(frozen=True)
class SshRoute:
    """The hops to the API server's network and the credentials for every hop."""

    jumps: tuple[Hop, ...]
    known_hosts: Path
    identity_file: Path | None = None  # None: use the agent
    accept_new_host_keys: bool = False

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for routes that may share one SSH connection (same hops, same credentials)."""
        return (self.jumps, self.known_hosts, self.identity_file, self.accept_new_host_keys)

    def __str__(self) -> str:
        return " -> ".join(str(hop) for hop in self.jumps)


@dataclass(frozen=True)
class ApiTarget:
    """Where the API server is, as its kubeconfig says, and the name its certificate must carry."""

    scheme: str
    host: str
    port: int
    tls_server_name: str | None  # None for plain http


def api_target(cluster: ClusterFile) -> ApiTarget:
    """The API server address of `cluster` and the TLS name to verify (``tls-server-name`` wins)."""
    parts = urlsplit(cluster.server)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{cluster.path}: server URL has an invalid port") from None
    host = parts.hostname
    if not host:
        raise ConfigError(f"{cluster.path}: server URL has no host")
    scheme = parts.scheme.lower()
    name: str | None = None
    if scheme == "https":
        override = _cluster_entry(cluster).get("tls-server-name")
        name = str(override) if override else host
    return ApiTarget(
        scheme=scheme, host=host, port=port or _DEFAULT_PORTS[scheme], tls_server_name=name
    )


def parse_route(cluster: ClusterFile) -> SshRoute | None:
    """The SSH route of `cluster`, or None when it is reached directly."""
    spec = cluster.extension.get("ssh")
    if spec is None:
        return None
    where = f"{cluster.path}: fleet extension ssh"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = sorted(set(map(str, spec)) - _SSH_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    default_user = _optional_str(spec, "user", where)
    jumps = spec.get("jumps")
    if not isinstance(jumps, list) or not jumps:
        raise ConfigError(f"{where}.jumps: must be a non-empty list of hops")
    hops = tuple(
        _hop(item, where=f"{where}.jumps[{index}]", default_user=default_user)
        for index, item in enumerate(jumps)
    )
    base = cluster.path.parent
    known = _optional_str(spec, "knownHosts", where)
    if not known:
        raise ConfigError(f"{where}.knownHosts: required (host keys are pinned)")
    identity = _optional_str(spec, "identityFile", where)
    agent = _optional_bool(spec, "agent", where)
    if bool(identity) == agent:
        raise ConfigError(f"{where}: give exactly one of identityFile and agent: true")
    return SshRoute(
        jumps=hops,
        known_hosts=_path(known, base),
        identity_file=_path(identity, base) if identity else None,
        accept_new_host_keys=_optional_bool(spec, "acceptNewHostKeys", where),
    )


def _hop(item: Any, *, where: str, default_user: str) -> Hop:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be a mapping with host, port, user")
    unknown = sorted(set(map(str, item)) - _HOP_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    host = _optional_str(item, "host", where)
    if not host:
        raise ConfigError(f"{where}.host: required")
    port = item.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{where}.port: must be an integer from 1 to 65535")
    user = _optional_str(item, "user", where) or default_user
    if not user:
        raise ConfigError(f"{where}.user: required (here or as ssh.user)")
    return Hop(host=host, port=port, user=user)


def _optional_str(spec: Mapping[str, Any], name: str, where: str) -> str:
    value = spec.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{name}: must be a non-empty string")
    return value.strip()


def _optional_bool(spec: Mapping[str, Any], name: str, where: str) -> bool:
    value = spec.get(name, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{name}: must be true or false")
    return value


def _path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _cluster_entry(cluster: ClusterFile) -> Mapping[str, Any]:
    """The current context's cluster body (its structure was checked when the file was read)."""
    document = cluster.document
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    context = contexts.get(document.get("current-context")) or {}
    for entry in document.get("clusters") or []:
        if entry.get("name") == context.get("cluster"):
            body: Mapping[str, Any] = entry.get("cluster") or {}
            return body
    return {}
