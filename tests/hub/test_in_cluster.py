"""``fleet run --in-cluster``: the cluster the hub runs in is the destination named ``in-cluster``.

The hub runs in-process in a Pod's shoes: ``KUBERNETES_SERVICE_HOST``/``PORT`` point at a kit
apiserver and ``FLEET_SERVICEACCOUNT_DIR`` at a directory holding what the kubelet would mount
(``token``, ``ca.crt``, ``namespace``), the token a real one from the TokenRequest API for a
ServiceAccount bound to ``cluster-admin``. No kubeconfig of that cluster is in ``clusters/``.

- an app whose ``destination.server`` is Argo CD's ``https://kubernetes.default.svc`` converges
  there;
- rotation: the token file is rewritten with a second token, then the first one is revoked (each
  token is bound to a Secret of its own, and deleting the Secret invalidates its token; the test
  checks the apiserver refuses it), and the next commit still converges: the hub read the file
  again;
- a ``clusters/in-cluster.yaml`` is refused as a clash, named on the board, and does not take over;
- without the environment the board names the problem and what to do.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import yaml

from fleet.apply import kube
from fleet.controlplane import RunningCluster
from fleet.hub.hub import Hub
from tests.hub.hubkit import configmap, hub_settings, push_webhook, until, value_on
from tests.sources.gitkit import Remote

SERVER = "https://kubernetes.default.svc"


def _application(repo_url: str, namespace: str) -> str:
    """An Argo CD Application aimed at the cluster Argo CD (here: fleet) runs in."""
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: web, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: "{repo_url}", targetRevision: main, path: app}}
  destination: {{server: "{SERVER}", namespace: {namespace}}}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
"""


async def _apply(admin: kube.Cluster, path: str, doc: dict[str, Any]) -> None:
    await admin.request(
        "PATCH",
        path,
        query=[("fieldManager", "fleet-in-cluster-test"), ("force", "true")],
        body=doc,
        content_type=kube.APPLY_PATCH,
    )


async def _service_account(admin: kube.Cluster, namespace: str, name: str) -> None:
    """A namespace with ServiceAccount `name` in it, bound to cluster-admin (enough for apps
    that create their namespaces; the chart's own RBAC is tested in tests/deploy)."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    await _apply(admin, f"/api/v1/namespaces/{namespace}", ns)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    await _apply(admin, f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", account)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    await _apply(
        admin, f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{namespace}", binding
    )


async def _bound_token(admin: kube.Cluster, namespace: str, account: str, secret: str) -> str:
    """A TokenRequest token of `account`, valid while Secret `secret` exists."""
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret, "namespace": namespace},
        "stringData": {"purpose": "binds a test token"},
    }
    await _apply(admin, f"/api/v1/namespaces/{namespace}/secrets/{secret}", doc)
    found = await admin.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{secret}")
    answer = await admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": secret,
                    "uid": found["metadata"]["uid"],
                },
            },
        },
    )
    return str(answer["status"]["token"])


def _ca(cluster: RunningCluster) -> bytes:
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    entry = kubeconfig["clusters"][0]["cluster"]
    if "certificate-authority-data" in entry:
        return base64.b64decode(str(entry["certificate-authority-data"]))
    return (cluster.kubeconfig.parent / str(entry["certificate-authority"])).read_bytes()


async def _token_status(cluster: RunningCluster, ca: Path, token: str) -> int:
    """What the apiserver answers a GET of the namespaces with `token` as the bearer."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"https://127.0.0.1:{cluster.port}/api/v1/namespaces?limit=1",
            headers={"Authorization": f"Bearer {token}"},
            ssl=ssl.create_default_context(cafile=str(ca)),
        ) as response,
    ):
        return response.status


async def _board(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/api/status") as response,
    ):
        assert response.status == 200
        data: dict[str, Any] = await response.json()
        return data


def _in_cluster(data: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in data["clusters"] if c["name"] == "in-cluster"]
    assert len(found) == 1, data["clusters"]
    entry: dict[str, Any] = found[0]
    return entry


@pytest.mark.anyio
async def test_in_cluster_destination_converges_and_follows_token_rotation(
    kit_clusters: list[RunningCluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = kit_clusters[0]
    tag = uuid.uuid4().hex[:6]
    home, app_ns, account = f"fleet-home-{tag}", f"in-cluster-{tag}", "fleet"
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "ca.crt").write_bytes(_ca(cluster))
    (sa_dir / "namespace").write_text(home)
    async with kube.connect(cluster.kubeconfig) as admin:
        await _service_account(admin, home, account)
        first_token = await _bound_token(admin, home, account, "token-one")
        (sa_dir / "token").write_text(first_token)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(cluster.port))
        monkeypatch.setenv("FLEET_SERVICEACCOUNT_DIR", str(sa_dir))

        remote = Remote(tmp_path / "git")
        first = remote.commit({"app/settings.yaml": configmap(app_ns, "one")})
        settings = hub_settings(tmp_path, in_cluster=True)
        settings.config_path.write_text(_application(remote.url, app_ns))
        hub = Hub(settings)
        async with anyio.create_task_group() as tg:
            port = await tg.start(hub.run)
            await until(lambda: hub.board.cell("web", "in-cluster").ready, limit=180)
            assert hub.board.cell("web", "in-cluster").applied_commit == first
            assert await value_on(cluster, app_ns) == "one"
            assert _in_cluster(await _board(port))["state"] == "ready"
            assert list(settings.clusters_dir.iterdir()) == []  # no kubeconfig of it anywhere

            # rotation: the kubelet swaps the file; then the first token stops being valid
            second_token = await _bound_token(admin, home, account, "token-two")
            replacement = sa_dir / "token.new"
            replacement.write_text(second_token)
            replacement.replace(sa_dir / "token")
            await anyio.sleep(2.5)  # the token file is looked at once a second
            await admin.request("DELETE", f"/api/v1/namespaces/{home}/secrets/token-one")

            async def revoked() -> bool:
                return await _token_status(cluster, sa_dir / "ca.crt", first_token) == 401

            await until(revoked, limit=60)  # the test would pass with the old token otherwise
            assert await _token_status(cluster, sa_dir / "ca.crt", second_token) == 200
            second = remote.commit({"app/settings.yaml": configmap(app_ns, "two")})
            assert await push_webhook(port, remote.url) == 200

            async def applied_second() -> bool:
                return hub.board.cell("web", "in-cluster").applied_commit == second

            await until(applied_second, limit=180)
            assert await value_on(cluster, app_ns) == "two"

            # a file of clusters/ named in-cluster clashes: refused, named, not taken over
            clash = settings.clusters_dir / "in-cluster.yaml"
            clash.write_text(cluster.kubeconfig.read_text())

            async def clash_shown() -> bool:
                return any(str(clash) in p for p in (await _board(port))["problems"])

            await until(clash_shown, limit=60)
            data = await _board(port)
            assert data["summary"]["green"] is False
            assert _in_cluster(data)["state"] == "ready"
            connections = hub.membership.connections
            connection = connections.get("in-cluster") if connections else None
            assert connection is not None and connection.file.extension.get("inCluster")
            clash.unlink()

            async def clash_gone() -> bool:
                problems: list[str] = (await _board(port))["problems"]
                return problems == []

            await until(clash_gone, limit=60)
            connections = hub.membership.connections
            assert connections is not None and connections.get("in-cluster")
            hub.stop()


@pytest.mark.anyio
async def test_in_cluster_without_its_environment_names_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = hub_settings(tmp_path, in_cluster=True)
    settings.config_path.write_text("apps: []\n")
    hub = Hub(settings)
    async with anyio.create_task_group() as tg:
        port = await tg.start(hub.run)
        entry = _in_cluster(await _board(port))
        assert entry["state"] == "error"
        assert "KUBERNETES_SERVICE_HOST is not set" in entry["error"]
        assert "run fleet in a Pod" in entry["error"]
        # set but without the ServiceAccount files: the missing file is named
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("FLEET_SERVICEACCOUNT_DIR", str(tmp_path / "nothing"))
        await hub.membership.join_in_cluster()
        entry = _in_cluster(await _board(port))
        assert entry["state"] == "error" and f"{tmp_path}/nothing/token" in entry["error"]
        hub.stop()
