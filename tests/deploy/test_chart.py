"""The Helm chart of deploy/helm/fleet: rendered by ``helm template``, applied to a kit cluster, its
ServiceAccount's RBAC shown to be enough and least with a token from the TokenRequest API:
sharded, the token reads and writes its Leases and nothing else (not even the release's own
ConfigMaps and Secrets, which the hub reads from mounted volumes); one replica alone gets no Role
and no token at all.

A kit cluster runs no kubelet, so the chart's Pods are never started: the Deployment, Service,
ServiceAccount, Role and ConfigMaps are created for real (server-side apply, read back), and the
hub runs here instead, as a subprocess, in the Pod's shoes: ``KUBERNETES_SERVICE_HOST``/``PORT``
point at the kit apiserver and ``FLEET_SERVICEACCOUNT_DIR`` at a directory holding what the
kubelet would mount (``token``, ``ca.crt``, ``namespace``), and the management kubeconfig is the
chart's own ConfigMap with its paths moved to that directory. It takes its Leases in the
release's namespace with that token; the same token cannot read Secrets cluster-wide nor write
outside what the Role grants (answered 403 by the apiserver, and asked as ``kubectl auth
can-i`` does, by SelfSubjectAccessReview). A rotated token file is read again.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient

from fleet.apply import discovery, kube
from fleet.controlplane import RunningCluster
from fleet.controlplane.binaries import ensure_tool
from fleet.errors import ConfigError
from fleet.settings import default_cache_dir
from fleet.transport import incluster
from tests.hub.hubkit import until

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "fleet"
NAMESPACE = "fleet-chart"
RELEASE = "hub"
FULLNAME = "hub-fleet"
VALUES = [
    "apiTokens.existingSecret=hub-tokens",
    "clusters.existingSecret=hub-clusters",
    "replicaCount=2",
    "hubId=chart",
]


def _helm() -> Path:
    return ensure_tool("helm", cache_dir=default_cache_dir())


async def _template(*sets: str, check: bool = True) -> tuple[int, list[dict[str, Any]], str]:
    args = [str(_helm()), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for value in sets:
        args += ["--set", value]
    result = await anyio.run_process(args, check=False)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    docs = [d for d in yaml.safe_load_all(result.stdout.decode()) if d]
    return result.returncode, docs, result.stderr.decode()


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        found.setdefault(doc["kind"], []).append(doc)
    return found


@pytest.mark.anyio
async def test_chart_renders_least_privilege_non_root_hub() -> None:
    _, docs, _ = await _template(*VALUES)
    kinds = _by_kind(docs)
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "Service", "ConfigMap",
                          "Deployment"}  # fmt: skip
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds  # nothing cluster-wide
    (role,) = kinds["Role"]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r for r in role["rules"]}
    # what the replicas need: their leases, and a look at their namespace
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(
        rules[(("coordination.k8s.io",), ("leases",))]["verbs"]
    )
    assert rules[(("",), ("namespaces",))] == {
        "apiGroups": [""], "resources": ["namespaces"], "resourceNames": [NAMESPACE],
        "verbs": ["get"],
    }  # fmt: skip
    # what they must not: the config, clusters and tokens come from mounted volumes, never the API
    assert set(rules) == {(("coordination.k8s.io",), ("leases",)), (("",), ("namespaces",))}
    granted = {res for rule in role["rules"] for res in rule["resources"]}
    assert not granted & {"secrets", "configmaps", "*"}
    (account,) = kinds["ServiceAccount"]
    assert account["automountServiceAccountToken"] is True  # sharded: the Leases need the token
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    (hub,) = pod["containers"]
    assert hub["securityContext"]["readOnlyRootFilesystem"] is True
    assert hub["securityContext"]["allowPrivilegeEscalation"] is False
    assert hub["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert hub["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert hub["resources"]["requests"] and hub["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in hub["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for writable in ("/var/lib/fleet", "/var/cache/fleet", "/tmp"):
        assert "emptyDir" in volumes[mounts[writable]], writable
    assert volumes[mounts["/clusters"]]["secret"]["secretName"] == "hub-clusters"
    assert volumes[mounts["/etc/fleet/tokens"]]["secret"]["secretName"] == "hub-tokens"
    assert volumes[mounts["/config"]]["configMap"]["name"] == f"{FULLNAME}-config"
    args = hub["args"]
    assert "--clusters=/clusters" in args and "--api-tokens=/etc/fleet/tokens/tokens.txt" in args
    assert f"--shard-namespace={NAMESPACE}" in args  # two replicas: sharded through Leases
    (service,) = kinds["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    lint = await anyio.run_process(
        [str(_helm()), "lint", str(CHART), "--strict", "--set", VALUES[0]], check=False
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()

    # the in-cluster destination is the one thing that grants cluster-wide rights, when asked
    _, docs, _ = await _template(*VALUES, "inCluster.enabled=true")
    assert {"ClusterRole", "ClusterRoleBinding"} <= set(_by_kind(docs))
    # one replica alone makes no call to this cluster's API: no Role, no token in the Pod
    alone = _by_kind((await _template(*VALUES, "replicaCount=1"))[1])
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & set(alone)
    assert alone["ServiceAccount"][0]["automountServiceAccountToken"] is False
    (deployment,) = alone["Deployment"]
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert not any(a.startswith("--shard-") for a in deployment["spec"]["template"]["spec"]
                   ["containers"][0]["args"])  # fmt: skip
    # one replica forced sharded: the Role again; one replica in-cluster: the token, no Role
    forced = _by_kind((await _template(*VALUES, "replicaCount=1", "sharding.enabled=true"))[1])
    assert "Role" in forced and forced["ServiceAccount"][0]["automountServiceAccountToken"]
    inside = _by_kind((await _template(*VALUES, "replicaCount=1", "inCluster.enabled=true"))[1])
    assert "Role" not in inside and "ClusterRole" in inside
    assert inside["Deployment"][0]["spec"]["template"]["spec"]["automountServiceAccountToken"]
    # without API tokens the chart refuses, saying what to give
    code, _, err = await _template("replicaCount=1", check=False)
    assert code != 0 and "apiTokens.existingSecret" in err


async def _apply(cluster: kube.Cluster, doc: dict[str, Any]) -> dict[str, Any]:
    resource = await discovery.resolve(cluster, doc["apiVersion"], doc["kind"])
    assert resource is not None, doc["kind"]
    namespace = doc["metadata"].get("namespace", "")
    path = f"{resource.collection(namespace)}/{doc['metadata']['name']}"
    await cluster.request(
        "PATCH",
        path,
        query=[("fieldManager", "fleet-chart-test"), ("force", "true")],
        body=doc,
        content_type=kube.APPLY_PATCH,
    )
    return await cluster.request("GET", path)


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "stringData": data,
    }


async def _token(cluster: kube.Cluster) -> str:
    answer = await cluster.request(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{FULLNAME}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    return str(answer["status"]["token"])


async def _status(api: kube.Cluster, method: str, path: str, body: Any = None) -> int:
    """The HTTP status the apiserver answers `method path` with."""
    try:
        status, _ = await api.exchange(method, path, body=body)
    except kube.ApiError as exc:
        return exc.status
    return status


async def _can_i(api: kube.Cluster, verb: str, resource: str, namespace: str = "") -> bool:
    """``kubectl auth can-i VERB RESOURCE [-n NAMESPACE]``: a SelfSubjectAccessReview
    (`resource` as ``plural.group`` for a named group)."""
    plural, _, group = resource.partition(".")
    attributes = {"verb": verb, "resource": plural, "group": group, "namespace": namespace}
    answer = await api.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
    )
    return bool(answer["status"].get("allowed"))


def _service_account_dir(directory: Path, cluster: RunningCluster, token: str) -> Path:
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    entry = kubeconfig["clusters"][0]["cluster"]
    if "certificate-authority-data" in entry:
        ca = base64.b64decode(entry["certificate-authority-data"])
    else:
        ca = (cluster.kubeconfig.parent / entry["certificate-authority"]).read_bytes()
    directory.mkdir(parents=True)
    (directory / "ca.crt").write_bytes(ca)
    (directory / "token").write_text(token)
    (directory / "namespace").write_text(NAMESPACE)
    return directory


@pytest.mark.anyio
async def test_chart_applies_and_its_service_account_is_enough_and_least(
    kit_clusters: list[RunningCluster], tmp_path: Path
) -> None:
    cluster = kit_clusters[0]
    _, docs, _ = await _template(*VALUES)
    async with kube.connect(cluster.kubeconfig) as admin:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        await _apply(admin, namespace)
        await _apply(admin, _secret("hub-tokens", {"tokens.txt": "t0ken-for-tests-1, admin\n"}))
        await _apply(admin, _secret("hub-clusters", {}))
        for doc in docs:  # every rendered object is created for real and read back
            live = await _apply(admin, doc)
            assert live["metadata"]["uid"], doc["kind"]
        deployment = await admin.request(
            "GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{FULLNAME}"
        )
        assert deployment["spec"]["replicas"] == 2
        token = await _token(admin)

    sa_dir = _service_account_dir(tmp_path / "serviceaccount", cluster, token)
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(cluster.port),
        incluster.DIR_ENV: str(sa_dir),
    }
    found = incluster.detect(env)
    assert found is not None and found.namespace == NAMESPACE
    async with incluster.api_client(found) as client:
        api = kube.Cluster(name=incluster.NAME, api=client)
        # enough: its leases and its namespace object
        leases = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
        assert await _status(api, "GET", leases) == 200
        assert await _status(api, "GET", f"/api/v1/namespaces/{NAMESPACE}") == 200
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "probe", "namespace": NAMESPACE},
                 "spec": {"holderIdentity": "test"}}  # fmt: skip
        assert await _status(api, "POST", leases, lease) == 201
        assert await _status(api, "DELETE", f"{leases}/probe") == 200
        assert await _can_i(api, "update", "leases.coordination.k8s.io", NAMESPACE)
        # least: not even its own config and secrets (mounted volumes, not the API), nothing
        # cluster-wide, nothing written beyond leases, nothing elsewhere
        config_path = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{FULLNAME}-config"
        assert await _status(api, "GET", config_path) == 403
        secret_path = f"/api/v1/namespaces/{NAMESPACE}/secrets/hub-tokens"
        assert await _status(api, "GET", secret_path) == 403
        assert not await _can_i(api, "list", "secrets", NAMESPACE)
        assert not await _can_i(api, "watch", "configmaps", NAMESPACE)
        assert await _status(api, "GET", "/api/v1/secrets") == 403
        assert await _status(api, "GET", "/api/v1/namespaces/default/secrets") == 403
        assert (
            await _status(api, "GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases")
            == 403
        )
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
        assert await _status(api, "POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", cm) == 403
        assert not await _can_i(api, "list", "secrets")
        assert not await _can_i(api, "create", "deployments.apps", NAMESPACE)
        assert not await _can_i(api, "get", "secrets", "kube-system")

        # the token file is read again when it changes: a bad token is refused, a good one works
        (sa_dir / "token").write_text("not-a-valid-token")
        await anyio.sleep(1.1)  # the file is looked at at most once a second
        assert await _status(api, "GET", leases) == 401
        (sa_dir / "token").write_text(token)
        await anyio.sleep(1.1)
        assert await _status(api, "GET", leases) == 200

    # the destination `in-cluster`: its kubeconfig document connects as it is (the hub's
    # connector today), and its rotating configuration does too
    file = incluster.cluster_file(found, labels={"env": "mgmt"})
    assert file.ref.name == incluster.NAME and file.ref.labels == {"env": "mgmt"}
    async with kube.connect(file.document, name=file.ref.name, base_dir=sa_dir) as plain:
        assert await _status(plain, "GET", leases) == 200
    rotating = incluster.configuration_for(file)
    assert rotating is not None
    async with ApiClient(configuration=rotating) as client:
        assert await _status(kube.Cluster(name="x", api=client), "GET", leases) == 200

    # the hub itself, in the Pod's shoes: the chart's management kubeconfig, the SA token
    (management,) = [d for d in docs if d["metadata"]["name"] == f"{FULLNAME}-management"]
    text = management["data"]["kubeconfig.yaml"]
    text = text.replace("https://kubernetes.default.svc", found.server)
    text = text.replace("/var/run/secrets/kubernetes.io/serviceaccount", str(sa_dir))
    kubeconfig = tmp_path / "management.yaml"
    kubeconfig.write_text(text)
    (tmp_path / "fleet.yaml").write_text("apps: []\n")
    (tmp_path / "clusters").mkdir()
    async with kube.connect(cluster.kubeconfig) as admin:
        before = await admin.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
        )
        assert not before.get("items"), "no lease before the hub runs"
    process = await anyio.open_process(
        [sys.executable, "-m", "fleet.cli.main", "run", "--config", str(tmp_path / "fleet.yaml"),
         "--clusters", str(tmp_path / "clusters"), "--state-dir", str(tmp_path / "state"),
         "--listen", "127.0.0.1:0", "--hub-id", "chart", "--shard-kubeconfig", str(kubeconfig),
         "--shard-namespace", NAMESPACE, "--replica-id", "hub-fleet-0"],
        env={**os.environ, **env, "FLEET_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    try:
        async with kube.connect(cluster.kubeconfig) as admin:

            async def held() -> bool:
                answer = await admin.request(
                    "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
                )
                holders = [i["spec"].get("holderIdentity") for i in answer.get("items") or []]
                return "hub-fleet-0" in holders

            await until(held, limit=120)  # the hub wrote its membership lease with the SA token
        assert process.returncode is None  # and it runs
    finally:
        process.terminate()
        with anyio.move_on_after(30):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()


def test_in_cluster_detection_names_what_is_missing(tmp_path: Path) -> None:
    assert incluster.detect({}) is None  # not in a Pod: no in-cluster config
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", incluster.DIR_ENV: str(tmp_path)}
    with pytest.raises(ConfigError, match=f"{tmp_path}/token is missing or empty"):
        incluster.detect(env)
    (tmp_path / "token").write_text("abc-token-123")
    (tmp_path / "ca.crt").write_text("pem")
    found = incluster.detect(env)
    assert found is not None and found.server == "https://10.0.0.1:443"
    assert found.namespace == ""  # no namespace file
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_PORT='http'"):
        incluster.detect({**env, "KUBERNETES_SERVICE_PORT": "http"})
    ipv6 = incluster.detect({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert ipv6 is not None and ipv6.server == "https://[fd00::1]:443"
