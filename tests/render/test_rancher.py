"""Rancher Fleet bundles: recognised by their keys, the first matching target's options merged
over the defaults, rendered exactly as ``helm template`` / ``kubectl kustomize`` of the merged
inputs, raw YAML overlays by file name, namespaces placed, and every unsupported key named."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from fleet.errors import StalledError
from fleet.render import (
    DocumentLimits,
    HelmOptions,
    RenderSpec,
    patches,
    rancher_bundle,
    rancher_raw,
)
from fleet.render.spec import RancherBundle
from fleet.types import ClusterRef, RenderedSet
from tests.render.argokit import Rig, by_hand, helm_binary

pytestmark = pytest.mark.anyio

CHART = {
    "web/chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "web/chart/values.yaml": "replicas: 1\nimage: {repo: nginx, tag: '1.0'}\nregion: none\n",
    "web/chart/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-conf}\n"
        "data:\n  replicas: {{ .Values.replicas | quote }}\n"
        '  image: {{ printf "%s:%s" .Values.image.repo .Values.image.tag | quote }}\n'
        "  region: {{ .Values.region | quote }}\n"
        "  namespace: {{ .Release.Namespace | quote }}\n"
        "  replicasKind: {{ kindOf .Values.replicas | quote }}\n"
    ),
    "web/common.yaml": "image: {tag: '1.1'}\n",
    "web/prod.yaml": "replicas: 5\n",
    "web/fleet.yaml": """\
helm:
  chart: ./chart
  releaseName: shop
  values: {replicas: 2, image: {tag: '1.0'}}
  valuesFiles: [common.yaml]
targetCustomizations:
- name: prod
  clusterSelector:
    matchLabels: {env: prod}
  helm:
    values: {replicas: 3, region: '${ .ClusterLabels.region }'}
    valuesFiles: [prod.yaml]
- name: staging
  clusterSelector:
    matchExpressions:
    - {key: env, operator: In, values: [staging, qa]}
  helm:
    values: {image: {tag: '2.0-rc'}, region: global.fleet.clusterLabels.region}
- name: one
  clusterName: lab
  helm: {values: {replicas: 9}}
""",
}
PROD = ClusterRef("eu-1", {"env": "prod", "region": "eu"})
PROD_US = ClusterRef("us-1", {"env": "prod", "region": "us"})
STAGING = ClusterRef("qa-1", {"env": "qa"})
QA_EU = ClusterRef("qa-2", {"env": "qa", "region": "eu"})
DEV = ClusterRef("dev-1", {"env": "dev"})
LAB = ClusterRef("lab", {"env": "prod", "region": "lab"})


def bundle_spec(cluster: ClusterRef | None, path: str = "web") -> RenderSpec:
    spec = RenderSpec(path, namespace="apps", app="web")
    return spec.with_cluster(cluster) if cluster is not None else spec


def helm_by_hand(rig: Rig, values: dict[str, Any], *, release: str = "shop") -> RenderedSet:
    file = rig.root / "merged-values.yaml"
    file.write_text(json.dumps(values))
    chart = str(rig.work / "web" / "chart")
    helm = str(helm_binary())
    return by_hand([helm, "template", release, chart, "--namespace=apps", "--values", str(file)])


async def test_helm_targets_merge_values_as_rancher_fleet_does(tmp_path: Path) -> None:
    rig = Rig(tmp_path, CHART)
    # bundle values, then its values files over them; the target's the same way, over those
    expected = [
        (PROD, {"replicas": 5, "image": {"tag": "1.1"}, "region": "eu"}),
        (QA_EU, {"replicas": 2, "image": {"tag": "2.0-rc"}, "region": "eu"}),
        (DEV, {"replicas": 2, "image": {"tag": "1.1"}}),
    ]
    for cluster, values in expected:
        got = await rig.render(bundle_spec(cluster))
        assert got == helm_by_hand(rig, values), cluster.name
    # a label the value names and the cluster lacks is an error, as Rancher Fleet's
    # invalid_label_reference (never an empty string)
    with pytest.raises(StalledError, match=r"cluster qa-1 has no label 'region'"):
        await rig.render(bundle_spec(STAGING))
    # the first match wins: lab is labelled prod, so the prod target beats its clusterName one
    lab = await rig.render(bundle_spec(LAB))
    (cm,) = lab.objects
    assert (cm["data"]["replicas"], cm["data"]["region"]) == ("5", "lab")


async def test_templating_names_the_label_and_refuses_other_expressions(tmp_path: Path) -> None:
    files = dict(CHART)
    rig = Rig(tmp_path, files)
    with pytest.raises(
        StalledError, match=r"web/fleet.yaml.*cluster nolabel has no label 'region'"
    ):
        await rig.render(bundle_spec(ClusterRef("nolabel", {"env": "prod"})))
    files["web/fleet.yaml"] = (
        "helm:\n  chart: chart\n  values: {region: '${ .ClusterValues.x | upper }'}\n"
    )
    rig.remote.commit(files)
    with pytest.raises(StalledError, match=r"\.ClusterValues\.x \| upper.*not supported"):
        await rig.render(bundle_spec(DEV))
    files["web/fleet.yaml"] = (
        "helm:\n  chart: chart\n  disablePreProcess: true\n"
        "  values: {region: '${ .ClusterValues.x }'}\n"
    )
    rig.remote.commit(files)
    (cm,) = (await rig.render(bundle_spec(DEV))).objects
    assert cm["data"]["region"] == "${ .ClusterValues.x }"
    # a result that reads as a number is one (Rancher Fleet templates the values' YAML text)
    files["web/fleet.yaml"] = (
        "helm:\n  chart: chart\n  values:\n    replicas: ${ .ClusterLabels.size }\n"
        "    region: 'r-${ .ClusterName }'\n    image: {tag: '${ .ClusterLabels.size }'}\n"
    )
    rig.remote.commit(files)
    sized = ClusterRef("s-1", {"size": "4"})
    assert await rig.render(bundle_spec(sized)) == helm_by_hand(
        rig, {"replicas": 4, "region": "r-s-1", "image": {"tag": 4}}, release="web"
    )


async def test_cache_key_follows_the_choice_not_the_labels(tmp_path: Path) -> None:
    files = dict(CHART)
    files["web/fleet.yaml"] = CHART["web/fleet.yaml"].replace("'${ .ClusterLabels.region }'", "eu")
    rig = Rig(tmp_path, files)
    prod_eu, prod_us = await rig.key(bundle_spec(PROD)), await rig.key(bundle_spec(PROD_US))
    assert prod_eu == prod_us  # same target, same merged values: one render serves both
    staging = await rig.key(bundle_spec(QA_EU))
    assert staging != prod_eu
    same = ClusterRef("st-1", {"env": "staging", "region": "eu"})
    assert await rig.key(bundle_spec(same)) == staging
    assert await rig.key(bundle_spec(DEV)) != prod_eu


async def test_without_the_cluster_a_choosing_bundle_cannot_render(tmp_path: Path) -> None:
    rig = Rig(tmp_path, CHART)
    snapshot = await rig.sources.snapshot(rig.remote.url)
    plan = await rig.renderer.plan(snapshot, bundle_spec(None))
    assert plan.needs_cluster
    with pytest.raises(StalledError, match="chooses by cluster"):
        await rig.render(bundle_spec(None))
    plan = await rig.renderer.plan(snapshot, bundle_spec(PROD))
    assert not plan.needs_cluster and plan.kind == "helm"
    assert plan.spec.rancher is not None and plan.spec.rancher.target == "prod"
    assert plan.spec.cluster_inputs == {"labels.region": "eu"}  # templated; env is the choice


async def test_a_values_file_templated_by_cluster_needs_the_cluster(tmp_path: Path) -> None:
    files = {k: v for k, v in CHART.items() if not k.startswith("web/") or "chart/" in k}
    files["web/fleet.yaml"] = "helm: {chart: chart, valuesFiles: [by-cluster.yaml]}\n"
    files["web/by-cluster.yaml"] = "region: 'r-${ .ClusterName }'\n"
    rig = Rig(tmp_path, files)
    snapshot = await rig.sources.snapshot(rig.remote.url)
    assert (await rig.renderer.plan(snapshot, bundle_spec(None))).needs_cluster
    (cm,) = (await rig.render(bundle_spec(DEV))).objects
    assert cm["data"]["region"] == "r-dev-1"
    files["web/by-cluster.yaml"] = "region: fixed\n"
    rig.remote.commit(files)
    snapshot = await rig.sources.snapshot(rig.remote.url)
    plan = await rig.renderer.plan(snapshot, bundle_spec(None))
    assert not plan.needs_cluster  # nothing in it depends on the cluster: rendered once for all
    (cm,) = (await rig.render(bundle_spec(None))).objects
    assert cm["data"]["region"] == "fixed"


async def test_a_chart_outside_the_bundle_is_read_and_keyed(tmp_path: Path) -> None:
    files = {k.replace("web/chart/", "charts/web/"): v for k, v in CHART.items() if "chart/" in k}
    files["bundles/web/fleet.yaml"] = "helm: {chart: ../../charts/web, releaseName: shop}\n"
    rig = Rig(tmp_path, files)
    spec = bundle_spec(None, "bundles/web")
    snapshot = await rig.sources.snapshot(rig.remote.url)
    plan = await rig.renderer.plan(snapshot, spec)
    assert (plan.kind, plan.path, plan.reads) == (
        "helm",
        "charts/web",
        ("bundles/web", "charts/web"),
    )
    before = await rig.key(spec)
    (cm,) = (await rig.render(spec)).objects
    assert cm["metadata"]["name"] == "shop-conf"
    rig.remote.commit({"charts/web/values.yaml": "replicas: 7\nimage: {repo: a, tag: b}\n"})
    assert await rig.key(spec) != before  # the chart's tree is in the key
    files["bundles/web/fleet.yaml"] = "helm: {chart: ../../../x}\n"
    rig.remote.commit(files)
    with pytest.raises(StalledError, match=r"helm.chart '../../../x' escapes the repository"):
        await rig.render(spec)


KUSTOMIZE = {
    "shop/base/kustomization.yaml": "resources: [cm.yaml]\n",
    "shop/base/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shop}\ndata: {tier: base}\n"
    ),
    "shop/prod/kustomization.yaml": (
        "resources: [../base]\nnamePrefix: prod-\n"
        "patches:\n- patch: '{kind: ConfigMap, apiVersion: v1, metadata: {name: shop}, "
        "data: {tier: prod}}'\n"
    ),
    "shop/fleet.yaml": """\
defaultNamespace: shop
kustomize: {dir: base}
targetCustomizations:
- name: prod
  clusterSelector: {matchLabels: {env: prod}}
  kustomize: {dir: prod}
""",
}


async def test_kustomize_dir_per_target_matches_kubectl_kustomize(tmp_path: Path) -> None:
    rig = Rig(tmp_path, KUSTOMIZE)
    for cluster, directory in ((PROD, "prod"), (DEV, "base")):
        got = await rig.render(bundle_spec(cluster, "shop"))
        hand = by_hand(["kubectl", "kustomize", str(rig.work / "shop" / directory)])
        placed = [{**o, "metadata": {**o["metadata"], "namespace": "shop"}} for o in hand.objects]
        assert got == RenderedSet.of(placed)


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.0
        env: [{name: A, value: '1'}, {name: B, value: '2'}]
      - {name: side, image: 'busybox:1'}
"""
RAW = {
    "raw/deploy.yaml": DEPLOY,
    "raw/svc.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
    ),
    "raw/rbac.yaml": (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: web}\n"
    ),
    "raw/sub/fleet.yaml": "defaultNamespace: other\n",
    "raw/sub/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sub-bundle}\n",
    "raw/overlays/big/deploy_patch.yaml": """\
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: web
        image: nginx:2.0
        env: [{name: B, value: '20'}, {name: C, value: '3'}]
      - {name: side, $patch: delete}
""",
    "raw/overlays/big/svc.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: edge}\n"
        "spec: {ports: [{port: 8080}]}\n"
    ),
    "raw/overlays/big/extra/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
    "raw/overlays/json/deploy_patch.yaml": (
        "- {op: replace, path: /spec/replicas, value: 4}\n"
        "- {op: add, path: /metadata/labels, value: {tier: json}}\n"
    ),
    "raw/fleet.yaml": """\
defaultNamespace: web
yaml: {overlays: [big]}
targetCustomizations:
- clusterSelector: {matchLabels: {env: prod}}
  yaml: {overlays: [json]}
- clusterSelector: {}
  defaultNamespace: lab
""",
}


def by_key(rendered: RenderedSet) -> dict[str, Any]:
    return {
        f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o
        for o in rendered.objects
    }


async def test_raw_yaml_overlays_replace_add_and_patch(tmp_path: Path) -> None:
    rig = Rig(tmp_path, RAW)
    prod = by_key(await rig.render(bundle_spec(PROD, "raw")))
    assert sorted(prod) == [
        "ClusterRole//web",  # cluster-scoped: no namespace
        "ConfigMap/web/extra",  # added by the overlay; the sub-bundle's file is not read
        "Deployment/web/web",
        "Service/edge/web",  # replaced whole; its own namespace kept
    ]
    deploy = prod["Deployment/web/web"]
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {
            "name": "web",
            "image": "nginx:2.0",
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "value": "20"},
                {"name": "C", "value": "3"},
            ],
        }
    ]  # strategic merge: containers and env by name, $patch: delete drops side
    assert deploy["spec"]["replicas"] == 4  # the json overlay (after big) replaced 3
    assert deploy["metadata"]["labels"] == {"tier": "json"}
    dev = by_key(await rig.render(bundle_spec(DEV, "raw")))
    assert dev["Deployment/lab/web"]["spec"]["replicas"] == 3
    assert "labels" not in dev["Deployment/lab/web"]["metadata"]


async def test_fleetignore_leaves_out_what_it_matches(tmp_path: Path) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}}}\n"
    files = {
        "ign/fleet.yaml": "defaultNamespace: ign\n",
        "ign/.fleetignore": "# test data\n*.test.yaml\nscratch/\n",
        "ign/keep.yaml": cm.format("keep"),
        "ign/drop.test.yaml": cm.format("drop"),
        "ign/scratch/notes.yaml": cm.format("scratch"),
        "ign/deep/.fleetignore": "only/here.yaml\n",
        "ign/deep/only/here.yaml": cm.format("here"),
        "ign/deep/other.test.yaml": cm.format("deep-test"),  # the parent's pattern reaches it
        "ign/deep/kept.yaml": cm.format("deep-kept"),
    }
    rig = Rig(tmp_path, files)
    names = sorted(
        o["metadata"]["name"] for o in (await rig.render(bundle_spec(DEV, "ign"))).objects
    )
    assert names == ["deep-kept", "keep"]
    files["ign/.fleetignore"] = "!keep.yaml\n"
    rig.remote.commit(files)
    with pytest.raises(StalledError, match=r"ign/\.fleetignore: '!keep.yaml'.*not supported"):
        await rig.render(bundle_spec(DEV, "ign"))


async def test_raw_overlay_errors_name_the_files(tmp_path: Path) -> None:
    files = {k: v for k, v in RAW.items() if k != "raw/deploy.yaml"}
    files["raw/fleet.yaml"] = "yaml: {overlays: [big]}\n"
    rig = Rig(tmp_path, files)
    with pytest.raises(
        StalledError, match=r"overlays/big/deploy_patch.yaml.*patches 'deploy.yaml'"
    ):
        await rig.render(bundle_spec(DEV, "raw"))
    files["raw/fleet.yaml"] = "yaml: {overlays: [nosuch]}\n"
    rig.remote.commit(files)
    with pytest.raises(StalledError, match=r"raw/fleet.yaml: yaml.overlays 'nosuch'"):
        await rig.render(bundle_spec(DEV, "raw"))
    rig.remote.commit({"raw/templates/cm.yaml": "data: {v: '{{ .Values.v }}'}\n"})
    with pytest.raises(StalledError, match=r"raw/fleet.yaml: a raw YAML bundle's templates/"):
        await rig.render(bundle_spec(DEV, "raw"))


async def test_forced_namespace_refuses_cluster_scoped_objects(tmp_path: Path) -> None:
    files = {k: v for k, v in RAW.items() if not k.startswith("raw/overlays/")}
    files["raw/fleet.yaml"] = "namespace: forced\n"
    rig = Rig(tmp_path, files)
    with pytest.raises(
        StalledError, match=r"namespace 'forced'.*ClusterRole 'web' is cluster-scoped"
    ):
        await rig.render(bundle_spec(DEV, "raw"))
    svc = RAW["raw/overlays/big/svc.yaml"]  # names namespace edge
    rig.remote.commit({"raw/rbac.yaml": None, "raw/svc.yaml": svc})
    got = by_key(await rig.render(bundle_spec(DEV, "raw")))
    assert sorted(got) == ["Deployment/forced/web", "Service/forced/web"]


class Reader:
    """A commit as a dict of files (for the pure recognition rules only)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    async def kind(self, path: str) -> Literal["tree", "blob"] | None:
        return "blob" if path in self.files else None

    async def kinds(self, paths: list[str]) -> dict[str, Literal["tree", "blob"] | None]:
        return {p: await self.kind(p) for p in paths}

    async def read(self, path: str) -> bytes:
        return self.files[path].encode()

    async def names(self, path: str) -> list[str]:
        return [p.rpartition("/")[2] for p in self.files]


@pytest.mark.parametrize(
    ("text", "bundle"),
    [
        ("apps:\n- name: web\n  source: {repoURL: x}\n", False),  # fleet's own config
        ("apps: []\ndefaultNamespace: x\n", False),  # still fleet's: apps decides
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fleet}\n", False),  # a manifest
        ("{}\n", False),
        ("", False),
        ("defaultNamespace: web\n", True),
        ("helm: {chart: ./chart}\n", True),
        ("dependsOn: [{name: other}]\n", True),
    ],
)
async def test_only_an_unambiguous_file_is_a_bundle(text: str, bundle: bool) -> None:
    found = await rancher_bundle.read_bundle(
        Reader({"p/fleet.yaml": text}), "p", {"fleet.yaml"}, limits=DocumentLimits()
    )
    assert (found is not None) == bundle


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("helm: {repo: 'https://charts.example', chart: web}\n", "helm.repo is not supported"),
        ("helm: {chart: 'oci://ghcr.io/x/web'}\n", "helm.chart 'oci://ghcr.io/x/web'"),
        ("helm: {valuesFrom: [{secretKeyRef: {name: s}}]}\n", "helm.valuesFrom is not supported"),
        ("paused: true\n", "paused is not supported.*syncPolicy.automated"),
        ("namespaceLabels: {a: b}\n", "namespaceLabels is not supported"),
        ("defaultNamespace: x\nreplicas: 3\n", "unknown key 'replicas'"),
        (
            "targetCustomizations:\n- {name: g, clusterGroup: prod}\n",
            r"targetCustomizations\[0\].clusterGroup is not supported by fleet: cluster groups",
        ),
        (
            "targetCustomizations:\n- {name: g, helm: {values: {a: 1}}}\n",
            r"targetCustomizations\[0\] selects no cluster",
        ),
        (
            "targetCustomizations:\n- clusterSelector:\n    matchExpressions:\n"
            "    - {key: a, operator: Gt, values: ['1']}\n",
            r"matchExpressions\[0\].operator 'Gt'",
        ),
        ("kustomize: {dir: x, buildOptions: y}\n", "unknown key 'kustomize.buildOptions'"),
    ],
)
def test_refused_keys_name_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(StalledError, match=f"p/fleet.yaml: .*{message}"):
        rancher_bundle.parse_bundle(yaml.safe_load(text), path="p", file="p/fleet.yaml")


def test_harmless_keys_are_logged_not_dropped_silently(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "defaultNamespace: x\ndependsOn: [{name: db}]\ndiff: {comparePatches: []}\nlabels: {a: b}\n"
    )
    with caplog.at_level(logging.WARNING, logger="fleet.render.rancher_bundle"):
        rancher_bundle.parse_bundle(yaml.safe_load(text), path="p", file="p/fleet.yaml")
    lines = [r.getMessage() for r in caplog.records]
    for key in ("dependsOn", "diff", "labels"):
        assert any(f"file=p/fleet.yaml key={key} " in line for line in lines), key


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "remove", "path": "/c"},
        {"op": "copy", "from": "/a/b", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "test", "path": "/a/b/3", "value": 3},
        {"op": "replace", "path": "/a/b/1", "value": 10},
    ]
    assert patches.json_patch(doc, ops, where="t") == {
        "a": {"b": [0, 10, 2, 3]},
        "e/f": [0, 1, 2, 3],
    }
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}  # the input is left alone
    with pytest.raises(StalledError, match="t: operation 0: test of /c failed"):
        patches.json_patch(doc, [{"op": "test", "path": "/c", "value": "y"}], where="t")
    with pytest.raises(StalledError, match="does not exist"):
        patches.json_patch(doc, [{"op": "remove", "path": "/nope"}], where="t")


def test_merge_patch_for_custom_kinds_replaces_lists() -> None:
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "spec": {"items": [{"name": "a"}], "x": 1},
    }
    patch = {"spec": {"items": [{"name": "b"}], "x": None, "y": 2}}
    assert patches.apply(obj, patch, where="t") == {
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "spec": {"items": [{"name": "b"}], "y": 2},
    }


def test_strategic_merge_directives() -> None:
    obj = yaml.safe_load(DEPLOY)
    replaced = patches.apply(
        obj, {"spec": {"template": {"spec": {"$patch": "replace", "containers": []}}}}, where="t"
    )
    assert replaced["spec"]["template"]["spec"] == {"containers": []}
    with pytest.raises(StalledError, match=r"t: directive \$retainKeys"):
        patches.apply(obj, {"spec": {"$retainKeys": ["selector"]}}, where="t")


async def test_app_tool_options_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path, CHART)
    spec = RenderSpec("web", helm=HelmOptions(values={"a": 1}), app="web").with_cluster(PROD)
    with pytest.raises(
        StalledError, match=re.escape("spec.source.helm is set but path 'web' holds a Rancher")
    ):
        await rig.render(spec)


def test_place_leaves_cluster_scoped_kinds_of_the_set_alone() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "globals.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Global"}},
    }
    custom = {"apiVersion": "example.com/v1", "kind": "Global", "metadata": {"name": "g"}}
    local = {"apiVersion": "example.com/v1", "kind": "Local", "metadata": {"name": "l"}}
    record = RancherBundle(bundle="b", file="b/fleet.yaml", default_namespace="apps")
    placed = rancher_raw.place([crd, custom, local], record)
    assert [o["metadata"].get("namespace") for o in placed] == [None, None, "apps"]
    forced = RancherBundle(bundle="b", file="b/fleet.yaml", namespace="apps")
    with pytest.raises(
        StalledError,
        match=r"b/fleet.yaml: namespace 'apps'.*CustomResourceDefinition 'globals\.example\.com'",
    ):
        rancher_raw.place([crd, custom], forced)
