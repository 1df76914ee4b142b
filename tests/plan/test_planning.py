"""The plan's pairing, ordering, unchanged detection and prune safety rules, as pure functions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fleet.plan import (
    APP_LABEL,
    DIGEST_ANNOTATION,
    MANAGED_BY_LABEL,
    TRACKING_ANNOTATION,
    DesiredObject,
    IgnoreRule,
    Op,
    PrunePolicy,
    Stage,
    make_plan,
    prepare,
)
from fleet.types import Manifest, ObjectKey

SCOPES = {
    ("", "ConfigMap"): True,
    ("", "Secret"): True,
    ("", "Namespace"): False,
    ("", "PersistentVolumeClaim"): True,
    ("apps", "Deployment"): True,
    ("rbac.authorization.k8s.io", "ClusterRole"): False,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): False,
}


def cm(name: str, namespace: str = "", **data: str) -> Manifest:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


def crd(kind: str = "Widget", scope: str = "Namespaced") -> Manifest:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.lower()}s.example.com"},
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"kind": kind, "plural": f"{kind.lower()}s"},
        },
    }


def prep(*manifests: Manifest, app: str = "web", namespace: str = "prod") -> list[DesiredObject]:
    return list(prepare(manifests, app=app, namespace=namespace, scopes=SCOPES))


def live_of(desired: DesiredObject, **extra: Any) -> Manifest:
    """What the server would hold after applying `desired`, with server-set fields."""
    live = copy.deepcopy(desired.manifest)
    live["metadata"].update(uid="u-1", resourceVersion="7", managedFields=[{"manager": "fleet"}])
    live.update(extra)
    return live


def inv(*objs: DesiredObject) -> dict[ObjectKey, str]:
    return {d.key: d.api_version for d in objs}


def test_prepare_fills_namespace_labels_and_digest() -> None:
    cfg, role, widget = prep(
        cm("a"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "r", "namespace": "stray"},
        },
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    )
    assert cfg.key == ObjectKey("", "ConfigMap", "prod", "a")
    assert role.key == ObjectKey("rbac.authorization.k8s.io", "ClusterRole", "", "r")
    assert "namespace" not in role.manifest["metadata"]
    assert widget.problem is not None  # no CRD in the set, unknown to discovery
    labels = cfg.manifest["metadata"]["labels"]
    assert labels == {MANAGED_BY_LABEL: "fleet", APP_LABEL: "web"}
    assert cfg.manifest["metadata"]["annotations"][DIGEST_ANNOTATION] == cfg.digest
    assert cfg.digest.startswith("sha256:")
    assert prep(cm("a", x="1"))[0].digest != cfg.digest


def test_custom_resources_take_their_scope_from_a_crd_in_the_set() -> None:
    objs = prep(
        crd("Widget", "Namespaced"),
        crd("Gadget", "Cluster"),
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {
            "apiVersion": "example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "g", "namespace": "x"},
        },
    )
    assert [o.problem for o in objs] == [None] * 4
    assert objs[2].key.namespace == "prod"
    assert objs[3].key.namespace == ""


def test_order_is_crds_namespaces_cluster_then_namespaced_and_prune_reversed() -> None:
    old = prep(
        cm("old1"),
        crd("Old", "Cluster"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "oldns"}},
    )
    new = prep(
        cm("a"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "r"},
        },
        crd(),
    )
    policy = PrunePolicy(prune_namespaces=True, prune_crds=True, consent=True)
    plan = make_plan(
        new, app="web", inventory=inv(*old), live={o.key: live_of(o) for o in old}, policy=policy
    )
    assert [s.stage for s in plan.applies] == [
        Stage.CRDS,
        Stage.NAMESPACES,
        Stage.CLUSTER,
        Stage.NAMESPACED,
    ]
    assert [s.op for s in plan.applies] == [Op.CREATE] * 4
    assert [s.stage for s in plan.prunes] == [Stage.NAMESPACED, Stage.NAMESPACES, Stage.CRDS]
    assert [stage for stage, _ in plan.stages()] == sorted(Stage)


def test_unchanged_update_and_verify() -> None:
    a, b, c = prep(cm("a", x="1"), cm("b", x="1"), cm("c", x="1"))
    drifted = live_of(c)
    drifted["data"]["x"] = "edited"
    live = {a.key: live_of(a), b.key: live_of(prep(cm("b", x="0"))[0]), c.key: drifted}
    plan = make_plan([a, b, c], app="web", inventory=inv(a, b, c), live=live, policy=PrunePolicy())
    ops = {s.key.name: (s.op, s.verify) for s in plan.applies}
    assert ops == {"a": (Op.UNCHANGED, False), "b": (Op.UPDATE, False), "c": (Op.UPDATE, True)}
    assert plan.writes == 2


def test_ignore_differences_by_json_pointer() -> None:
    (c,) = prep(cm("c", x="1", y="2"))
    live = live_of(c)
    live["data"]["y"] = "scaled by someone"
    rule = IgnoreRule(kind="ConfigMap", pointers=("/data/y",))
    plan = make_plan(
        [c], app="web", inventory=inv(c), live={c.key: live}, policy=PrunePolicy(), ignore=[rule]
    )
    assert plan.applies[0].op is Op.UNCHANGED


def test_server_defaults_do_not_count_as_changes() -> None:
    (dep,) = prep(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }
    )
    live = live_of(dep)
    live["spec"]["replicas"] = 1
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 1}
    plan = make_plan([dep], app="web", inventory={}, live={dep.key: live}, policy=PrunePolicy())
    assert plan.applies[0].op is Op.UNCHANGED


def test_remove_one_object_prunes_it_and_inventory_follows() -> None:
    objs = prep(*(cm(f"c{i}") for i in range(10)))
    live = {o.key: live_of(o) for o in objs}
    plan = make_plan(objs[1:], app="web", inventory=inv(*objs), live=live, policy=PrunePolicy())
    assert [s.key for s in plan.prunes] == [objs[0].key]
    assert objs[0].key not in plan.inventory_after()
    assert objs[0].key in plan.inventory_after(failed={objs[0].key})


def test_render_failure_prunes_and_applies_nothing() -> None:
    objs = prep(cm("a"), cm("b"))
    plan = make_plan(None, app="web", inventory=inv(*objs), live={}, policy=PrunePolicy())
    assert plan.applies == () and plan.prunes == ()
    assert plan.refused == "render failed"
    assert set(plan.inventory_after()) == {o.key for o in objs}


def test_empty_render_prunes_nothing_unless_allowed() -> None:
    objs = prep(cm("a"), cm("b"))
    live = {o.key: live_of(o) for o in objs}
    plan = make_plan([], app="web", inventory=inv(*objs), live=live, policy=PrunePolicy())
    assert plan.prunes == () and len(plan.blocked) == 2
    assert plan.refused is not None and "empty" in plan.refused
    allowed = make_plan(
        [], app="web", inventory=inv(*objs), live=live, policy=PrunePolicy(allow_empty=True)
    )
    assert len(allowed.prunes) == 2


def test_large_prune_needs_consent() -> None:
    objs = prep(*(cm(f"c{i}") for i in range(10)))
    live = {o.key: live_of(o) for o in objs}
    plan = make_plan(objs[:4], app="web", inventory=inv(*objs), live=live, policy=PrunePolicy())
    assert plan.prunes == () and len(plan.blocked) == 6
    assert plan.refused is not None and "consent" in plan.refused
    consented = make_plan(
        objs[:4], app="web", inventory=inv(*objs), live=live, policy=PrunePolicy(consent=True)
    )
    assert len(consented.prunes) == 6


def test_prune_off_keeps_objects_in_inventory() -> None:
    objs = prep(cm("a"), cm("b"), cm("c"))
    plan = make_plan(
        objs[:2],
        app="web",
        inventory=inv(*objs),
        live={o.key: live_of(o) for o in objs},
        policy=PrunePolicy(prune=False),
    )
    assert plan.prunes == ()
    assert objs[2].key in plan.inventory_after()


@pytest.mark.parametrize(
    ("manifest", "opt_in"),
    [
        (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
            PrunePolicy(prune_namespaces=True),
        ),
        (crd(), PrunePolicy(prune_crds=True)),
        (
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"}},
            PrunePolicy(prune_pvcs=True),
        ),
    ],
)
def test_data_bearing_kinds_need_opt_in(manifest: Manifest, opt_in: PrunePolicy) -> None:
    keep = prep(*(cm(f"c{i}") for i in range(5)))
    (obj,) = prep(manifest)
    live = {o.key: live_of(o) for o in [*keep, obj]}
    plan = make_plan(keep, app="web", inventory=inv(*keep, obj), live=live, policy=PrunePolicy())
    assert plan.prunes == () and [b.key for b in plan.blocked] == [obj.key]
    assert obj.key in plan.inventory_after()
    plan = make_plan(keep, app="web", inventory=inv(*keep, obj), live=live, policy=opt_in)
    assert [s.key for s in plan.prunes] == [obj.key]


def test_prune_false_annotation_and_foreign_objects_are_never_deleted() -> None:
    keep = prep(*(cm(f"c{i}") for i in range(5)))
    kept, foreign, relabelled, gone = prep(cm("kept"), cm("foreign"), cm("relabelled"), cm("gone"))
    live = {o.key: live_of(o) for o in keep}
    live[kept.key] = live_of(kept)
    live[kept.key]["metadata"]["annotations"]["fleet.dev/prune"] = "false"
    live[foreign.key] = live_of(foreign)
    live[foreign.key]["metadata"]["annotations"][TRACKING_ANNOTATION] = "fleet/other-app//prod"
    live[relabelled.key] = live_of(relabelled)  # our label alone, no tracking id: not ours
    del live[relabelled.key]["metadata"]["annotations"][TRACKING_ANNOTATION]
    live[relabelled.key]["metadata"]["labels"][APP_LABEL] = "other-app"
    plan = make_plan(
        keep,
        app="web",
        inventory=inv(*keep, kept, foreign, relabelled, gone),
        live=live,
        policy=PrunePolicy(consent=True),
    )
    assert plan.prunes == ()
    assert {b.key.name for b in plan.blocked} == {"kept"}
    assert {b.key.name for b in plan.kept} == {"foreign", "relabelled"}
    assert "fleet app other-app" in next(b.reason for b in plan.kept if b.key == foreign.key)
    assert plan.gone == (gone.key,)
    after = plan.inventory_after()
    assert gone.key not in after and foreign.key not in after and kept.key in after


def test_secret_string_data_compares_with_data() -> None:
    (secret,) = prep(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    live = live_of(secret)
    del live["stringData"]
    live["data"] = {"k": "dg=="}
    plan = make_plan(
        [secret], app="web", inventory={}, live={secret.key: live}, policy=PrunePolicy()
    )
    assert plan.applies[0].op is Op.UNCHANGED
