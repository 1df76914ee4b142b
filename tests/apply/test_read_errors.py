"""Errors of a read reach the caller as one FleetError that names what failed, on a kit cluster.

A ServiceAccount that may get ConfigMaps in one namespace but not list them, and nothing on
Secrets, reads an app's live objects the way sync does (one LIST per kind and namespace, a GET
for lone objects): the LIST and the GET are refused with 403, and the caller sees one
``ReadStalled`` (a StalledError) naming the kind, the namespace, the cluster, the HTTP code and
the server's message; never an ExceptionGroup.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from fleet import apply
from fleet.controlplane import RunningCluster
from fleet.errors import FleetError, StalledError, TransientError
from fleet.types import ObjectKey

pytestmark = pytest.mark.anyio


async def _service_account_kubeconfig(
    admin: apply.Cluster, kubeconfig: dict[str, Any], namespace: str
) -> dict[str, Any]:
    """A kubeconfig for a new ServiceAccount of `namespace` that may only get ConfigMaps."""
    await admin.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    base = f"/api/v1/namespaces/{namespace}"
    await admin.request(
        "POST",
        f"{base}/serviceaccounts",
        body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
    )
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    await admin.request(
        "POST",
        f"{rbac}/roles",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "get-only"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
    )
    await admin.request(
        "POST",
        f"{rbac}/rolebindings",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "get-only",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    token = await admin.request(
        "POST",
        f"{base}/serviceaccounts/reader/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )
    (entry,) = kubeconfig["clusters"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [entry],
        "users": [{"name": "reader", "user": {"token": token["status"]["token"]}}],
        "contexts": [{"name": "reader", "context": {"cluster": entry["name"], "user": "reader"}}],
        "current-context": "reader",
    }


@pytest.fixture
async def reader(kit_clusters: list[RunningCluster]) -> AsyncIterator[tuple[apply.Cluster, str]]:
    path = kit_clusters[0].kubeconfig
    namespace = f"rbac-{uuid.uuid4().hex[:8]}"
    async with apply.connect(path) as admin:
        document = yaml.safe_load(path.read_text())
        config = await _service_account_kubeconfig(admin, document, namespace)
        try:
            async with apply.connect(config, name="reader-cluster") as cluster:
                yield cluster, namespace
        finally:
            await admin.request("DELETE", f"/api/v1/namespaces/{namespace}")


async def test_a_forbidden_list_is_one_stalled_error_naming_what_failed(
    reader: tuple[apply.Cluster, str],
) -> None:
    cluster, namespace = reader
    keys = {ObjectKey("", "ConfigMap", namespace, f"c{i}"): "v1" for i in range(3)}
    lone = {ObjectKey("", "ConfigMap", namespace, "c0"): "v1"}
    assert await apply.read_live(cluster, lone) == {}  # a GET is allowed: absent, no error
    with pytest.raises(FleetError) as caught:
        await apply.read_live(cluster, keys, selector="fleet.dev/app=web")
    error = caught.value
    assert isinstance(error, StalledError) and isinstance(error, apply.ReadStalled)
    message = str(error)
    print(message)
    assert message.startswith(f"cannot list ConfigMap (v1) in namespace {namespace}")
    assert "on cluster reader-cluster" in message and "HTTP 403" in message
    assert "forbidden" in message and "cannot list resource" in message
    assert "RBAC" in message and "ExceptionGroup" not in message and "<" not in message


async def test_a_forbidden_get_is_one_stalled_error(reader: tuple[apply.Cluster, str]) -> None:
    cluster, namespace = reader
    keys = {
        ObjectKey("", "Secret", namespace, "s"): "v1",
        ObjectKey("", "ConfigMap", namespace, "c"): "v1",
    }
    with pytest.raises(apply.ReadStalled) as caught:
        await apply.read_live(cluster, keys, selector="fleet.dev/app=web")
    message = str(caught.value)
    assert message.startswith(f"cannot get Secret (v1) in namespace {namespace}")
    assert "HTTP 403" in message


async def test_an_unreadable_inventory_names_the_configmap(
    reader: tuple[apply.Cluster, str],
) -> None:
    cluster, _ = reader
    with pytest.raises(apply.ReadStalled) as caught:
        await apply.read_inventory(cluster, "web")
    message = str(caught.value)
    assert "ConfigMap fleet-inventory-web (fleet's inventory)" in message
    assert "namespace fleet-system" in message and "HTTP 403" in message


@pytest.mark.parametrize(
    ("status", "transient"),
    [(500, True), (503, True), (429, True), (400, False), (401, False), (403, False)],
)
def test_read_errors_say_whether_a_retry_can_help(status: int, transient: bool) -> None:
    error = apply.read_error(
        apply.ApiError(status, "Reason", "the server's words"),
        cluster="c1",
        verb="list",
        api_version="apps/v1",
        kind="Deployment",
        namespace="web",
    )
    assert isinstance(error, apply.ReadTransient if transient else apply.ReadStalled)
    assert str(error).startswith("cannot list Deployment (apps/v1) in namespace web on cluster c1")
    assert "the server's words" in str(error)
    assert f"HTTP {status}" in str(error) and error.status == status


def test_no_answer_stays_an_outage_for_the_breaker() -> None:
    """Status 0 (no answer) stays an ApiError with status 0: the hub counts it as an outage."""
    error = apply.read_error(
        apply.ApiError(0, "", "GET /api/v1/configmaps on cluster c1: connection refused"),
        cluster="c1",
        verb="list",
        api_version="v1",
        kind="ConfigMap",
        namespace="",
    )
    assert isinstance(error, apply.ApiError) and isinstance(error, TransientError)
    assert error.status == 0
    assert str(error).startswith("cannot list ConfigMap (v1) (cluster-scoped) on cluster c1")
