"""Argo CD's ``spec.source.kustomize`` fields render exactly as ``kubectl kustomize`` of the same
kustomization edited by hand, the committed files (and the mirror) stay as they were, and each
field is part of the cache key."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from fleet.errors import StalledError
from fleet.render import (
    DocumentLimits,
    HelmOptions,
    KustomizeOptions,
    KustomizeReplica,
    RenderSpec,
    kustomize_edit,
)
from fleet.types import RenderedSet
from tests.render.argokit import Rig, by_hand

pytestmark = pytest.mark.anyio

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: 'nginx:1.0'}
      - {name: side, image: 'busybox:1.30'}
      - {name: cache, image: 'redis:7'}
"""
APP = "resources: [../base]\ncommonLabels: {team: a}\nimages: [{name: busybox, newTag: '1.31'}]\n"
FILES = {
    "base/kustomization.yaml": "resources: [deploy.yaml, svc.yaml]\n",
    "base/deploy.yaml": DEPLOY,
    "base/svc.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {selector: {app: web}, ports: [{port: 80}]}\n"
    ),
    "app/kustomization.yaml": APP,
    "components/extra/kustomization.yaml": (
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [cm.yaml]\n"
    ),
    "components/extra/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
    "chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
}


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, FILES)


def by_hand_edit(rig: Rig, kustomization: str, *, name: str = "hand") -> RenderedSet:
    """``kubectl kustomize`` of a copy of the work tree with `kustomization` as the app's."""
    tree = rig.root / name
    shutil.copytree(rig.work, tree, ignore=shutil.ignore_patterns(".git"))
    (tree / "app" / "kustomization.yaml").write_text(kustomization)
    return by_hand(["kubectl", "kustomize", str(tree / "app")])


def images(rendered: RenderedSet) -> list[str]:
    (deploy,) = [o for o in rendered.objects if o["kind"] == "Deployment"]
    return [c["image"] for c in deploy["spec"]["template"]["spec"]["containers"]]


def app(options: KustomizeOptions) -> RenderSpec:
    return RenderSpec("app", kustomize=options, app="web")


async def test_images_as_kustomize_edit_set_image(rig: Rig) -> None:
    digest = "sha256:" + "a" * 64
    options = KustomizeOptions(
        images=("nginx=registry.local:5000/mirror/nginx:2.0", "busybox:1.36", f"redis@{digest}")
    )
    got = await rig.render(app(options))
    hand = (
        "resources: [../base]\ncommonLabels: {team: a}\nimages:\n"
        "- {name: busybox, newTag: '1.36'}\n"
        "- {name: nginx, newName: registry.local:5000/mirror/nginx, newTag: '2.0'}\n"
        f"- {{name: redis, digest: '{digest}'}}\n"
    )
    assert got == by_hand_edit(rig, hand)
    assert images(got) == [
        "registry.local:5000/mirror/nginx:2.0",
        "busybox:1.36",
        f"redis@{digest}",
    ]
    assert rig.in_memory == 1  # the engine's render from the files in memory agreed
    for bad in ("nginx", "=x:1", "a=b=c"):
        with pytest.raises(StalledError, match=re.escape("spec.source.kustomize.images")):
            await rig.render(app(KustomizeOptions(images=(bad,))))


async def test_name_prefix_suffix_namespace_and_replicas(rig: Rig) -> None:
    options = KustomizeOptions(
        name_prefix="prod-",
        name_suffix="-v2",
        namespace="shop",
        replicas=(KustomizeReplica("web", 4),),
    )
    got = await rig.render(app(options))
    hand = APP + "namePrefix: prod-\nnameSuffix: -v2\nnamespace: shop\n"
    hand += "replicas: [{name: web, count: 4}]\n"
    assert got == by_hand_edit(rig, hand)
    names = sorted((o["metadata"]["name"], o["metadata"]["namespace"]) for o in got.objects)
    assert names == [("prod-web-v2", "shop"), ("prod-web-v2", "shop")]
    (deploy,) = [o for o in got.objects if o["kind"] == "Deployment"]
    assert deploy["spec"]["replicas"] == 4


async def test_common_labels_and_annotations_refuse_to_overwrite_unless_forced(rig: Rig) -> None:
    options = KustomizeOptions(
        common_labels={"tier": "front"}, common_annotations={"owner": "shop-team"}
    )
    got = await rig.render(app(options))
    hand = (
        "resources: [../base]\ncommonLabels: {team: a, tier: front}\n"
        "images: [{name: busybox, newTag: '1.31'}]\ncommonAnnotations: {owner: shop-team}\n"
    )
    assert got == by_hand_edit(rig, hand)
    assert all(o["metadata"]["labels"]["tier"] == "front" for o in got.objects)
    clash = KustomizeOptions(common_labels={"team": "b"})
    with pytest.raises(StalledError, match=re.escape("spec.source.kustomize.forceCommonLabels")):
        await rig.render(app(clash))
    forced = await rig.render(
        app(KustomizeOptions(common_labels={"team": "b"}, force_common_labels=True))
    )
    assert forced == by_hand_edit(rig, APP.replace("team: a", "team: b"), name="forced")


async def test_inline_patches_and_components(rig: Rig) -> None:
    patches = (
        {
            "target": {"kind": "Deployment", "name": "web"},
            "patch": "- op: replace\n  path: /spec/replicas\n  value: 3\n",
        },
        {"patch": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort}\n"},
    )
    options = KustomizeOptions(patches=patches, components=("../components/extra",))
    got = await rig.render(app(options))
    hand = (
        APP
        + "patches:\n- target: {kind: Deployment, name: web}\n"
        + "  patch: |\n    - op: replace\n      path: /spec/replicas\n      value: 3\n"
        + "- patch: |\n    apiVersion: v1\n    kind: Service\n    metadata: {name: web}\n"
        + "    spec: {type: NodePort}\n"
        + "components: [../components/extra]\n"
    )
    assert got == by_hand_edit(rig, hand)
    kinds = sorted(o["kind"] for o in got.objects)
    assert kinds == ["ConfigMap", "Deployment", "Service"]
    with pytest.raises(StalledError, match=re.escape("spec.source.kustomize.patches[0]")):
        await rig.render(app(KustomizeOptions(patches=({"target": {"kind": "x"}},))))
    with pytest.raises(StalledError, match="does not exist"):
        await rig.render(app(KustomizeOptions(components=("../components/none",))))
    with pytest.raises(StalledError, match="escapes the repository"):
        await rig.render(app(KustomizeOptions(components=("../../outside",))))


async def test_the_committed_files_and_the_mirror_are_untouched(rig: Rig) -> None:
    options = KustomizeOptions(name_prefix="edited-", images=("nginx:9",))
    edited = await rig.render(app(options))
    assert {o["metadata"]["name"] for o in edited.objects} == {"edited-web"}
    snapshot = await rig.sources.snapshot(rig.remote.url)
    assert (await snapshot.read("app/kustomization.yaml")).decode() == APP
    plain = await rig.render(app(KustomizeOptions()))
    assert plain == by_hand(["kubectl", "kustomize", str(rig.work / "app")])
    assert {o["metadata"]["name"] for o in plain.objects} == {"web"}


async def test_refusals_and_the_cache_key(rig: Rig) -> None:
    with pytest.raises(StalledError, match=re.escape("spec.source.kustomize.version")):
        await rig.render(app(KustomizeOptions(version="v4.5.7")))
    with pytest.raises(StalledError, match=re.escape("spec.source.kustomize is set but path")):
        await rig.render(RenderSpec("chart", kustomize=KustomizeOptions(name_prefix="x-")))
    variants = [
        KustomizeOptions(),
        KustomizeOptions(images=("nginx:2",)),
        KustomizeOptions(name_prefix="a-"),
        KustomizeOptions(name_suffix="-a"),
        KustomizeOptions(namespace="a"),
        KustomizeOptions(common_labels={"a": "b"}),
        KustomizeOptions(common_annotations={"a": "b"}),
        KustomizeOptions(common_labels={"a": "b"}, force_common_labels=True),
        KustomizeOptions(replicas=(KustomizeReplica("web", 2),)),
        KustomizeOptions(patches=({"patch": "[]", "target": {"kind": "Service"}},)),
        KustomizeOptions(components=("../components/extra",)),
        KustomizeOptions(common_labels={"a": "b"}, label_without_selector=True),
        KustomizeOptions(
            common_labels={"a": "b"}, label_without_selector=True, label_include_templates=True
        ),
    ]
    keys = [await rig.key(app(options)) for options in variants]
    assert len(set(keys)) == len(keys)
    assert keys[0] == await rig.key(RenderSpec("app", app="web"))  # nothing set: as before


async def test_a_kustomization_beside_a_chart_wins_unless_helm_options_are_given(
    rig: Rig,
) -> None:
    rig.remote.commit(
        {
            "both/Chart.yaml": "apiVersion: v2\nname: both\nversion: 0.1.0\n",
            "both/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: helm}\n",
            "both/kustomization.yaml": "resources: [cm.yaml]\n",
            "both/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kustomize}\n",
        }
    )
    detected = await rig.render(RenderSpec("both", app="both"))
    assert detected == by_hand(["kubectl", "kustomize", str(rig.work / "both")])
    assert [o["metadata"]["name"] for o in detected.objects] == ["kustomize"]
    explicit = await rig.render(RenderSpec("both", helm=HelmOptions(), app="both"))
    assert [o["metadata"]["name"] for o in explicit.objects] == ["helm"]


def test_a_linked_kustomization_is_replaced_not_written_through(tmp_path: Path) -> None:
    """The planner refuses a kustomization that is a link (it reads the link's text), so this is
    the second line of defence, on a hand-made checkout: the edit never writes through a link."""
    (tmp_path / "app").mkdir()
    (tmp_path / "shared.yaml").write_text(APP)
    (tmp_path / "app" / "kustomization.yaml").symlink_to("../shared.yaml")
    options = KustomizeOptions(name_prefix="linked-")
    kustomize_edit.write(tmp_path, "app/kustomization.yaml", options, limits=DocumentLimits())
    file = tmp_path / "app" / "kustomization.yaml"
    assert not file.is_symlink() and "namePrefix: linked-" in file.read_text()
    assert (tmp_path / "shared.yaml").read_text() == APP


async def test_an_image_already_set_is_updated_in_place(rig: Rig) -> None:
    digest = "sha256:" + "b" * 64
    got = await rig.render(app(KustomizeOptions(images=(f"busybox=mirror/busybox@{digest}",))))
    hand = APP.replace(
        "images: [{name: busybox, newTag: '1.31'}]",
        f"images: [{{name: busybox, newName: mirror/busybox, digest: '{digest}'}}]",
    )
    assert got == by_hand_edit(rig, hand)
    assert images(got)[1] == f"mirror/busybox@{digest}"
    kept = await rig.render(app(KustomizeOptions(images=("busybox=mirror/busybox:*",))))
    assert images(kept)[1] == "mirror/busybox:1.31"  # '*' keeps the tag
    assert kept == by_hand_edit(
        rig, APP.replace("newTag: '1.31'", "newName: mirror/busybox, newTag: '1.31'"), name="kept"
    )


async def test_labels_without_selector_and_with_templates(rig: Rig) -> None:
    options = KustomizeOptions(common_labels={"tier": "front"}, label_without_selector=True)
    got = await rig.render(app(options))
    hand = APP + "labels: [{pairs: {tier: front}, includeSelectors: false}]\n"
    assert got == by_hand_edit(rig, hand)
    (deploy,) = [o for o in got.objects if o["kind"] == "Deployment"]
    assert deploy["metadata"]["labels"]["tier"] == "front"
    assert "tier" not in deploy["spec"]["selector"]["matchLabels"]
    assert "tier" not in deploy["spec"]["template"]["metadata"]["labels"]
    templates = await rig.render(app(dataclasses.replace(options, label_include_templates=True)))
    hand = APP + (
        "labels: [{pairs: {tier: front}, includeSelectors: false, includeTemplates: true}]\n"
    )
    assert templates == by_hand_edit(rig, hand, name="templates")
    (deploy,) = [o for o in templates.objects if o["kind"] == "Deployment"]
    assert deploy["spec"]["template"]["metadata"]["labels"]["tier"] == "front"
    assert "tier" not in deploy["spec"]["selector"]["matchLabels"]
    with pytest.raises(StalledError, match=re.escape("labelIncludeTemplates needs")):
        await rig.render(
            app(KustomizeOptions(common_labels={"a": "b"}, label_include_templates=True))
        )


async def test_ignore_missing_components(rig: Rig) -> None:
    components = ("../components/extra", "../components/none")
    with pytest.raises(StalledError, match="does not exist"):
        await rig.render(app(KustomizeOptions(components=components)))
    options = KustomizeOptions(components=components, ignore_missing_components=True)
    got = await rig.render(app(options))
    assert got == by_hand_edit(rig, APP + "components: [../components/extra]\n")
    assert await rig.key(app(options)) != await rig.key(
        app(KustomizeOptions(components=components[:1]))
    )
