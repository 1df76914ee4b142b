"""The client configuration of a hub that runs in a Pod: the cluster it runs in, reached through
its ServiceAccount (client-go's ``rest.InClusterConfig``).

**Detection.** ``KUBERNETES_SERVICE_HOST`` (and ``KUBERNETES_SERVICE_PORT``, 443 when absent)
are set by the kubelet in every container; :func:`detect` reads them, and the ServiceAccount
directory (``/var/run/secrets/kubernetes.io/serviceaccount``, or ``FLEET_SERVICEACCOUNT_DIR``
for tests and for a hub outside a Pod that is handed a token) with its ``token``, ``ca.crt`` and
``namespace`` files. A missing or empty file is a :class:`~fleet.errors.ConfigError` naming it.

**Rotation.** A projected ServiceAccount token expires (an hour by default) and the kubelet
replaces the file before it does, by swapping a symlink. :class:`TokenFile` is asked for the
token before every request (kubernetes-asyncio's ``refresh_api_key_hook``); it looks at the file
at most once a second (one ``stat``) and reads it again when its modification time, size or
inode changed, and at least every minute. A file that cannot be read keeps the last good token
(the request then fails on its own, as an ``ApiError`` 401, and is retried); the token is
registered with :mod:`fleet.logs`, so no log line shows it.

**Use.** :func:`configuration` is a ``kubernetes_asyncio`` ``Configuration`` for an ``ApiClient``;
the sharding code uses it for the management cluster. The hub offers the same cluster as the
destination named :data:`NAME` (Argo CD's ``https://kubernetes.default.svc``) when
``--in-cluster`` enables it: :func:`cluster_file` is that destination as the registry's
:class:`~fleet.config.clusters.ClusterFile` (its document a kubeconfig naming the token file and
the CA, which ``fleet.apply.connect`` loads as it is, the token then read once), and
:func:`configuration_for` gives the rotating configuration for it, for a connector that takes a
``Configuration``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet import logs
from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError
from fleet.types import ClusterRef

if TYPE_CHECKING:  # the client package: imported where used, after the hub listens
    from kubernetes_asyncio.client import ApiClient, Configuration

__all__ = [
    "DEFAULT_DIR",
    "DIR_ENV",
    "NAME",
    "InCluster",
    "TokenFile",
    "api_client",
    "cluster_file",
    "configuration",
    "configuration_for",
    "detect",
]

log = logging.getLogger(__name__)

NAME = "in-cluster"  # the destination cluster's name (Argo CD: https://kubernetes.default.svc)
DIR_ENV = "FLEET_SERVICEACCOUNT_DIR"
DEFAULT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_LOOK_EVERY = 1.0  # seconds between looks at the token file
_READ_EVERY = 60.0  # seconds after which it is read again even when it looks unchanged


@dataclass(frozen=True)
class InCluster:
    """Where the API server of the cluster this process runs in is, and its credentials."""

    host: str
    port: int
    directory: Path

    @property
    def server(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def token_path(self) -> Path:
        return self.directory / "token"

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def namespace(self) -> str:
        """The Pod's namespace (the ``namespace`` file); empty when the file is absent."""
        try:
            return (self.directory / "namespace").read_text().strip()
        except OSError:
            return ""


def detect(environ: Mapping[str, str] | None = None) -> InCluster | None:
    """The in-cluster configuration when ``KUBERNETES_SERVICE_HOST`` is set, else None.

    Raises :class:`ConfigError` when it is set but the port or the ServiceAccount files are
    wrong: a Pod without its token mounted (``automountServiceAccountToken: false``) says so."""
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
    if not host:
        return None
    text = env.get("KUBERNETES_SERVICE_PORT", "").strip() or "443"
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"KUBERNETES_SERVICE_PORT={text!r}: expected a port from 1 to 65535")
    directory = Path(env.get(DIR_ENV, "").strip() or DEFAULT_DIR)
    found = InCluster(host=host, port=int(text), directory=directory)
    for path in (found.token_path, found.ca_path):
        if not path.is_file() or path.stat().st_size == 0:
            raise ConfigError(
                f"in-cluster config: {path} is missing or empty (is the ServiceAccount token "
                f"mounted? set {DIR_ENV} to the directory holding token and ca.crt)"
            )
    return found


class TokenFile:
    """The bearer token of a ServiceAccount token file, read again when the file changes."""

    def __init__(self, path: Path, *, clock: Any = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._looked = float("-inf")
        self._read_at = float("-inf")
        self._token = ""
        self.reads = 0  # how many times the file was read (for tests and debugging)
        self.current()
        if not self._token:
            raise ConfigError(f"in-cluster config: {path} holds no token")

    def current(self) -> str:
        """The token, fresh: the file is looked at at most once a second."""
        now = self._clock()
        if now - self._looked < _LOOK_EVERY:
            return self._token
        self._looked = now
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
            if stamp != self._stamp or now - self._read_at >= _READ_EVERY:
                token = self.path.read_text().strip()
                if token:
                    logs.register_secret(token)
                    if self._token and token != self._token:
                        log.info("event=incluster_token_rotated path=%s", self.path)
                    self._token, self._stamp, self._read_at = token, stamp, now
                    self.reads += 1
        except OSError as exc:
            log.warning(
                "event=incluster_token_unreadable path=%s error=%s (the last token stays in use)",
                self.path,
                exc.strerror or type(exc).__name__,
            )
        return self._token


def configuration(cluster: InCluster) -> Configuration:
    """A client configuration for `cluster`: its server, its CA, its rotating token."""
    from kubernetes_asyncio.client import Configuration  # not before the hub listens

    tokens = TokenFile(cluster.token_path)
    settings: Configuration = type.__call__(Configuration)  # no copy of a global default
    settings.host = cluster.server
    settings.ssl_ca_cert = str(cluster.ca_path)
    settings.verify_ssl = True

    def refresh(config: Configuration) -> None:
        config.api_key["BearerToken"] = "Bearer " + tokens.current()

    refresh(settings)
    settings.refresh_api_key_hook = refresh
    return settings


def api_client(cluster: InCluster) -> ApiClient:
    """An ``ApiClient`` for `cluster` (an async context manager: close it)."""
    from kubernetes_asyncio.client import ApiClient

    return ApiClient(configuration=configuration(cluster))


def cluster_file(cluster: InCluster, *, labels: Mapping[str, str] | None = None) -> ClusterFile:
    """The cluster the hub runs in as the destination :data:`NAME`, as if it were a file of
    ``clusters/`` (its path a name in the ServiceAccount directory, never read)."""
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": NAME,
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority": str(cluster.ca_path),
                },
            }
        ],
        "users": [{"name": NAME, "user": {"tokenFile": str(cluster.token_path)}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME}}],
        "current-context": NAME,
    }
    extension = {"inCluster": True, "labels": dict(labels or {})}
    return ClusterFile(
        ref=ClusterRef(name=NAME, labels=dict(labels or {})),
        server=cluster.server,
        path=cluster.directory / NAME,
        document=document,
        extension=extension,
    )


def configuration_for(file: ClusterFile) -> Configuration | None:
    """The rotating configuration of a :func:`cluster_file`; None for any other cluster."""
    if not file.extension.get("inCluster"):
        return None
    host, _, port = file.server.removeprefix("https://").rpartition(":")
    found = InCluster(host=host.strip("[]"), port=int(port), directory=file.path.parent)
    return configuration(found)
