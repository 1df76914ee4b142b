"""A cluster's kubeconfig rewritten to dial its tunnel endpoint (pure).

Only the current context's cluster entry changes: ``server`` becomes the endpoint's URL and
``tls-server-name`` the name the API server's certificate must carry, so TLS verification is
unchanged (same CA, same name) while the bytes travel through the tunnel. Credentials are left as
they are. kubernetes-asyncio honours ``tls-server-name`` (aiohttp's ``server_hostname``), so the
result can be loaded with ``config.new_client_from_config_dict``.
"""

from __future__ import annotations

import copy
from typing import Any

from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError
from fleet.transport.tunnels import Endpoint

__all__ = ["tunneled_document"]


def tunneled_document(cluster: ClusterFile, endpoint: Endpoint) -> dict[str, Any]:
    """A copy of `cluster`'s kubeconfig whose current cluster is reached at `endpoint`."""
    document: dict[str, Any] = copy.deepcopy(dict(cluster.document))
    if endpoint.url == cluster.server and endpoint.tls_server_name is None:
        return document
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    wanted = (contexts.get(document.get("current-context")) or {}).get("cluster")
    for entry in document.get("clusters") or []:
        if entry.get("name") == wanted:
            body = entry["cluster"]
            body["server"] = endpoint.url
            if endpoint.tls_server_name is not None:
                body["tls-server-name"] = endpoint.tls_server_name
            return document
    raise ConfigError(f"{cluster.path}: no cluster named {wanted!r}")
