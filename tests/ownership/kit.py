"""Small helpers of the ownership tests: manifests, reads, and counts of writes.

Writes are counted with a watch of one collection: every change the server made to those
objects, whoever made it, and nothing else (the apiserver's ``apiserver_request_total`` counts a
whole resource cluster-wide, so another test deleting a namespace meanwhile would show).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import anyio

from fleet import apply
from fleet.types import Manifest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configmap(name: str, namespace: str = "", **data: str) -> Manifest:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


async def create_by_hand(cluster: apply.Cluster, manifest: Manifest) -> Manifest:
    """Create `manifest` as a person would (kubectl create: a POST, no fleet marks)."""
    namespace = manifest["metadata"].get("namespace", "")
    plural = {"ConfigMap": "configmaps", "Namespace": "namespaces", "Secret": "secrets"}[
        manifest["kind"]
    ]
    where = f"/namespaces/{namespace}" if namespace else ""
    return await cluster.request(
        "POST",
        f"/api/v1{where}/{plural}",
        query=[("fieldManager", "kubectl-create")],
        body=manifest,
    )


async def get(cluster: apply.Cluster, path: str) -> Manifest | None:
    try:
        return await cluster.request("GET", path)
    except apply.ApiError as exc:
        if exc.status == 404:
            return None
        raise


async def watched_changes(
    cluster: apply.Cluster, collection: str, *, seconds: float, field_selector: str = ""
) -> Counter[str]:
    """The changes (ADDED, MODIFIED, DELETED) to the objects of `collection` (a REST path such as
    ``/api/v1/namespaces/x/configmaps``) during the next `seconds`, from a watch."""
    selector = [("fieldSelector", field_selector)] if field_selector else []
    listing = await cluster.request("GET", collection, query=selector or None)
    query = [
        *selector,
        ("watch", "1"),
        ("resourceVersion", str(listing["metadata"]["resourceVersion"])),
        ("timeoutSeconds", str(int(seconds) + 5)),
    ]
    counts: Counter[str] = Counter()
    async with cluster.stream(collection, query=query, request_timeout=seconds + 30) as response:
        with anyio.move_on_after(seconds):
            async for line in response.content:
                if line.strip():
                    kind = str(json.loads(line).get("type", ""))
                    if kind != "BOOKMARK":
                        counts[kind] += 1
    return counts
