"""Projects on a kit cluster: each violation is refused before any write, named with the rule it
breaks, and the rest of the sync goes on; a source outside the project refuses the whole app.

The config is read from a real ``fleet.yaml`` (projects and all), mapped by the hub's own
``app_sync``, and synced against the kit: the cluster-admin ClusterRoleBinding for
``system:authenticated``, a ConfigMap written into kube-system, a ConfigMap in another team's
namespace, and the other team's Namespace (which, absent from the cluster afterwards, would have
been pruned) are all refused; the team's own objects are applied.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet import apply
from fleet.config import loading
from fleet.errors import StalledError
from fleet.hub import apps
from fleet.reconcile.syncing import sync
from fleet.types import ClusterRef, Manifest, ObjectKey, RenderedSet
from tests.ownership.kit import configmap, get, unique

pytestmark = pytest.mark.anyio

Outcome = apply.Outcome

CONFIG = """
projects:
  - name: team-a
    sourceRepos: ["https://git.example.com/team-a/*"]
    destinations:
      - clusters: {{matchLabels: {{env: test}}}}
        namespaces: ["{team_a}", "{team_a}-*"]
    clusterResourceWhitelist:
      - {{group: "", kind: Namespace}}
    namespaceResourceBlacklist:
      - {{group: "", kind: ResourceQuota}}
apps:
  - name: {name}
    project: team-a
    source: {{repoURL: "https://git.example.com/team-a/web.git", path: "."}}
    destination: {{namespace: "{team_a}"}}
    syncPolicy: {{prune: true, pruneKinds: [Namespace], createNamespace: true}}
  - name: {name}-stray
    project: team-a
    source: {{repoURL: "https://git.example.com/team-b/web.git"}}
    destination: {{namespace: "{team_a}"}}
"""


def admin_binding(name: str) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": "system:authenticated",
            }
        ],
    }


async def test_each_project_violation_is_refused_and_the_rest_is_applied(
    cluster: apply.Cluster, tmp_path: Path
) -> None:
    team_a, team_b, name = unique("team-a"), unique("team-b"), unique("web")
    config_file = tmp_path / "fleet.yaml"
    config_file.write_text(CONFIG.format(team_a=team_a, name=name))
    config = loading.load(config_file)
    app, stray = config.apps
    ref = ClusterRef(cluster.name, {"env": "test"})
    engine = apps.app_sync(app, ref)

    binding = admin_binding(unique("everyone-admin"))
    rendered = apps.with_namespace(
        app,
        ref,
        RenderedSet.of(
            [
                binding,
                configmap("in-kube-system", "kube-system"),
                configmap("theirs", team_b),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team_b}},
                {
                    "apiVersion": "v1",
                    "kind": "ResourceQuota",
                    "metadata": {"name": "q"},
                    "spec": {"hard": {"pods": "1"}},
                },
                configmap("mine", team_a, ok="yes"),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{team_a}-extra"}},
            ]
        ),
    )
    result = await sync(cluster, engine, rendered, revision="r1")
    refused = {c.key: c.reason for c in result.changes.of(Outcome.REFUSED)}
    rbac = "rbac.authorization.k8s.io"
    assert set(refused) == {
        ObjectKey(rbac, "ClusterRoleBinding", "", binding["metadata"]["name"]),
        ObjectKey("", "ConfigMap", "kube-system", "in-kube-system"),
        ObjectKey("", "ConfigMap", team_b, "theirs"),
        ObjectKey("", "Namespace", "", team_b),
        ObjectKey("", "ResourceQuota", team_a, "q"),
    }, result.changes.changes
    for reason in refused.values():
        print(reason)
    by_kind = {k.kind + "/" + (k.namespace or k.name): r for k, r in refused.items()}
    assert (
        "clusterResourceWhitelist" in by_kind[f"ClusterRoleBinding/{binding['metadata']['name']}"]
    )
    assert "namespace kube-system" in by_kind["ConfigMap/kube-system"]
    assert f"namespace {team_b}" in by_kind[f"ConfigMap/{team_b}"]
    assert "not a destination namespace of project team-a" in by_kind[f"Namespace/{team_b}"]
    assert "namespaceResourceBlacklist" in by_kind[f"ResourceQuota/{team_a}"]
    applied = result.changes.keys(Outcome.CREATED)
    assert ObjectKey("", "ConfigMap", team_a, "mine") in applied
    assert ObjectKey("", "Namespace", "", f"{team_a}-extra") in applied
    assert not result.in_sync and len(result.problems()) == 5 and result.verdict == "refused"
    assert all("refused by the project" in p for p in result.problems())
    binding_path = f"/apis/{rbac}/v1/clusterrolebindings/{binding['metadata']['name']}"
    assert await get(cluster, binding_path) is None
    assert await get(cluster, "/api/v1/namespaces/kube-system/configmaps/in-kube-system") is None
    assert await get(cluster, f"/api/v1/namespaces/{team_b}") is None

    with pytest.raises(StalledError, match="sourceRepos"):
        await sync(cluster, apps.app_sync(stray, ref), RenderedSet.of([]), revision="r1")
    await cluster.request("DELETE", f"/api/v1/namespaces/{team_a}")
    await cluster.request("DELETE", f"/api/v1/namespaces/{team_a}-extra")


async def test_another_teams_namespace_is_never_pruned(
    cluster: apply.Cluster, tmp_path: Path
) -> None:
    """The inventory lists the other team's Namespace (say the project was widened, then
    narrowed): the narrowed project does not let the app prune it."""
    team_a, team_b, name = unique("team-a"), unique("team-b"), unique("web")
    open_app = loading.parse_documents(
        [
            {
                "apps": [
                    {
                        "name": name,
                        "source": {"repoURL": "https://git.example.com/team-a/web.git"},
                        "destination": {"namespace": team_a},
                        "syncPolicy": {"prune": True, "pruneKinds": ["Namespace"]},
                    }
                ]
            }
        ],
        origin="inline",
    )[0]
    ref = ClusterRef(cluster.name, {"env": "test"})
    both = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team_a}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team_b}},
        configmap("a", team_a),
    ]
    first = await sync(cluster, apps.app_sync(open_app, ref), RenderedSet.of(both), revision="r1")
    assert first.in_sync, first.problems()
    config_file = tmp_path / "fleet.yaml"
    config_file.write_text(CONFIG.format(team_a=team_a, name=name))
    narrowed = loading.load(config_file).apps[0]
    result = await sync(
        cluster, apps.app_sync(narrowed, ref), RenderedSet.of(both[:1] + both[2:]), revision="r2"
    )
    (held,) = result.changes.of(Outcome.SKIPPED)
    assert (
        held.key == ObjectKey("", "Namespace", "", team_b) and "outside the project" in held.reason
    )
    assert await get(cluster, f"/api/v1/namespaces/{team_b}") is not None
    assert not result.in_sync
    print("objects wrongly deleted: 0 (the other team's Namespace is still there)")
    await cluster.request("DELETE", f"/api/v1/namespaces/{team_a}")
    await cluster.request("DELETE", f"/api/v1/namespaces/{team_b}")
