"""Kubeconfig documents for the clusters the kit starts: one self-contained file per cluster.

A cluster joins fleet when its kubeconfig is dropped into ``clusters/``; the file stem is the
cluster's name, and labels travel in the context's ``fleet`` extension::

    contexts:
    - name: prod-eu
      context:
        cluster: prod-eu
        user: prod-eu-admin
        extensions:
        - name: fleet
          extension: {labels: {env: prod}}

Certificates are embedded (``*-data``), so the file can be copied anywhere. Building the document
is pure; :func:`write` writes it atomically with mode 0600 (it holds a private key).
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["build", "rename", "write"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build(
    *,
    name: str,
    server: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The kubeconfig document of one cluster, with `labels` in its ``fleet`` extension."""
    context: dict[str, Any] = {"cluster": name, "user": f"{name}-admin"}
    if labels:
        context["extensions"] = [{"name": "fleet", "extension": {"labels": dict(labels)}}]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": f"{name}-admin",
                "user": {
                    "client-certificate-data": _b64(client_cert_pem),
                    "client-key-data": _b64(client_key_pem),
                },
            }
        ],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
        "preferences": {},
    }


def write(path: Path, document: Mapping[str, Any]) -> None:
    """Write `document` to `path` atomically (temp file, then rename), owner-readable only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(dict(document), handle, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rename(document: Mapping[str, Any], *, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a one-cluster kubeconfig (as kind writes it) named `name`, carrying `labels`.

    The current context's cluster and user are kept; all three are renamed so the file stem, the
    context and the cluster agree.
    """
    current = document.get("current-context")
    contexts = {c["name"]: c["context"] for c in document.get("contexts", [])}
    if current not in contexts:
        raise ValueError(f"kubeconfig has no current context {current!r}")
    context = contexts[current]
    cluster = next(c["cluster"] for c in document["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in document["users"] if u["name"] == context["user"])
    new_context: dict[str, Any] = {"cluster": name, "user": f"{name}-admin"}
    if labels:
        new_context["extensions"] = [{"name": "fleet", "extension": {"labels": dict(labels)}}]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": dict(cluster)}],
        "users": [{"name": f"{name}-admin", "user": dict(user)}],
        "contexts": [{"name": name, "context": new_context}],
        "current-context": name,
        "preferences": {},
    }
