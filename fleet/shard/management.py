"""The replica's client of the management cluster, whose bearer token may rotate while it runs.

A replica renews its leases every few seconds for as long as it lives, far longer than a bound
ServiceAccount token lasts (an hour for a projected one; the kubelet writes the next into the
same file before the old one expires). A client that read its token once would start failing
every renewal when the old one expires, and the replica would drop all its clusters. So:

- ``--shard-in-cluster`` (no management kubeconfig): the cluster the hub runs in, through the
  rotating in-cluster configuration (:func:`fleet.transport.incluster.configuration`);
- ``--shard-kubeconfig PATH`` whose user names a ``tokenFile`` (what the Helm chart mounts): the
  kubeconfig is loaded as usual, then the token is taken from that file before every request
  through the same :class:`~fleet.transport.incluster.TokenFile` (one ``stat`` a second at most;
  read again when the file changes, and at least every minute), so a replaced file is in use
  within a second, 401 or not;
- any other kubeconfig (a client certificate, a static token): loaded once, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet import yamlsafe
from fleet.apply.kube import Cluster, Timeouts
from fleet.apply.kube import connect as connect_cluster
from fleet.errors import ConfigError
from fleet.shard.settings import ShardSettings
from fleet.transport import incluster

if TYPE_CHECKING:  # the client package: imported where used, after the hub listens
    from kubernetes_asyncio.client import Configuration

__all__ = ["configuration", "connect", "token_file"]

NAME = "management"


def token_file(document: Mapping[str, Any], *, base: Path) -> Path | None:
    """The ``tokenFile`` of the current context's user of kubeconfig `document` (relative to
    `base`), or None when that user has none."""
    current = document.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    user_name = (contexts.get(current) or {}).get("user")
    users = {u.get("name"): u.get("user") or {} for u in document.get("users") or []}
    found = (users.get(user_name) or {}).get("tokenFile")
    if not isinstance(found, str) or not found:
        return None
    path = Path(found)
    return path if path.is_absolute() else base / path


async def configuration(settings: ShardSettings) -> Configuration:
    """The client configuration of the management cluster `settings` name (see the module
    docstring); ConfigError names the file or the variable at fault."""
    if settings.kubeconfig is None:
        found = incluster.detect()
        if found is None:
            raise ConfigError(
                "--shard-in-cluster: KUBERNETES_SERVICE_HOST is not set (not in a Pod): give "
                "--shard-kubeconfig PATH instead"
            )
        return incluster.configuration(found)
    path = settings.kubeconfig
    try:
        documents = yamlsafe.load_yaml(path.read_bytes(), source=f"--shard-kubeconfig {path}")
    except OSError as exc:
        raise ConfigError(f"--shard-kubeconfig {path}: cannot read it ({exc.strerror})") from exc
    except yamlsafe.YamlRefused as exc:
        raise ConfigError(str(exc)) from exc
    document = documents[0] if len(documents) == 1 else None
    if not isinstance(document, dict):
        raise ConfigError(f"--shard-kubeconfig {path}: not a kubeconfig (expected a mapping)")
    from kubernetes_asyncio.client import Configuration  # not before the hub listens
    from kubernetes_asyncio.config.kube_config import KubeConfigLoader

    made: Configuration = type.__call__(Configuration)  # no copy of a global default
    loader = KubeConfigLoader(config_dict=document, config_base_path=str(path.parent))
    await loader.load_and_set(made)
    source = token_file(document, base=path.parent)
    if source is not None:
        tokens = incluster.TokenFile(source)

        def refresh(config: Configuration) -> None:
            config.api_key["BearerToken"] = "Bearer " + tokens.current()

        refresh(made)
        made.refresh_api_key_hook = refresh
    return made


@asynccontextmanager
async def connect(settings: ShardSettings, *, timeouts: Timeouts) -> AsyncIterator[Cluster]:
    """A client of the management cluster, its token kept fresh; closed on exit."""
    made = await configuration(settings)
    async with connect_cluster(made, name=NAME, timeouts=timeouts) as api:
        yield api
