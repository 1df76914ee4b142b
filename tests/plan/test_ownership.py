"""Ownership in the plan, as pure functions: tracking ids, conflicts, adoption, release, shared
Namespaces, the guards that count the render, rewinds, and the inventory's compatible format."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from fleet import apply, plan
from fleet.plan import (
    APP_LABEL,
    SHARED_MARK_ANNOTATION,
    TRACKING_ANNOTATION,
    Entry,
    Op,
    Ownership,
    PrunePolicy,
    make_plan,
    prepare,
)
from fleet.types import Manifest, ObjectKey

SCOPES = {("", "ConfigMap"): True, ("", "Namespace"): False}
MINE = plan.tracking_id(hub="fleet", app="web", cluster="c1", namespace="prod")
THEIRS = plan.tracking_id(hub="fleet", app="other", cluster="c1", namespace="prod")
PRUNE_ALL = PrunePolicy(allow_empty=True, consent=True, prune_namespaces=True)


def cm(name: str, **data: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def shared_ns(name: str = "prod") -> Manifest:
    metadata = {"name": name, "annotations": {SHARED_MARK_ANNOTATION: "createNamespace"}}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def prep(*manifests: Manifest, tracking: str = MINE) -> list[plan.DesiredObject]:
    return list(prepare(manifests, app="web", namespace="prod", scopes=SCOPES, tracking=tracking))


def live_of(desired: plan.DesiredObject, uid: str = "u-1", **extra: Any) -> Manifest:
    live = copy.deepcopy(desired.manifest)
    live["metadata"].update(uid=uid, resourceVersion="7")
    live.update(extra)
    return live


def hand_made(manifest: Manifest, namespace: str = "prod") -> Manifest:
    live = copy.deepcopy(manifest)
    live["metadata"].update(namespace=namespace, uid="u-hand")
    return live


def make(desired: list[plan.DesiredObject], **kw: Any) -> plan.Plan:
    kw.setdefault("inventory", {})
    kw.setdefault("live", {})
    kw.setdefault("policy", PrunePolicy())
    ownership = Ownership(
        MINE, adopt=kw.pop("adopt", False), delete_adopted=kw.pop("delete_adopted", False)
    )
    return make_plan(desired, app="web", ownership=ownership, **kw)


def test_tracking_ids_round_trip_and_reject_slashes() -> None:
    assert MINE == "fleet/web/c1/prod"
    parsed = plan.Tracking.parse(MINE)
    assert parsed == plan.Tracking("fleet", "web", "c1", "prod")
    assert plan.Tracking.parse("not-a-tracking-id") is None
    assert "fleet app other" in plan.describe_owner(THEIRS)
    assert plan.describe_owner(None) == "not managed by fleet"
    with pytest.raises(ValueError, match="hub"):
        plan.tracking_id(hub="a/b", app="web")
    assert len(plan.field_manager("h/" + "a" * 60 + "/" + "c" * 60 + "/" + "n" * 63)) <= 128
    assert plan.owner_key(MINE) != plan.owner_key(THEIRS)


def test_prepare_stamps_the_tracking_id() -> None:
    (obj,) = prep(cm("a"))
    assert obj.manifest["metadata"]["annotations"][TRACKING_ANNOTATION] == MINE
    (ns,) = prep(shared_ns())
    assert ns.shared and ns.manifest["metadata"]["annotations"] == {plan.owner_key(MINE): MINE}
    assert APP_LABEL not in ns.manifest["metadata"]["labels"]


def test_conflicts_name_the_owner_and_adopt_takes_only_what_no_fleet_app_owns() -> None:
    hand, other = prep(cm("hand", v="1"), cm("other", v="1"))
    (theirs,) = prep(cm("other", v="0"), tracking=THEIRS)
    live = {hand.key: hand_made(cm("hand", v="0")), other.key: live_of(theirs)}
    refused = make([hand, other], live=live)
    assert refused.applies == ()
    owners = {c.key.name: c.owner for c in refused.conflicts}
    assert owners["hand"] == "not managed by fleet"
    assert owners["other"].startswith("fleet app other")
    adopting = make([hand, other], live=live, adopt=True)
    assert [(s.key.name, s.op) for s in adopting.applies] == [("hand", Op.ADOPT)]
    assert adopting.applies[0].entry == Entry("v1", "u-hand", adopted=True)
    assert [c.key.name for c in adopting.conflicts] == ["other"]
    assert adopting.inventory_after() == {hand.key: Entry("v1", "u-hand", adopted=True)}


def test_creations_are_never_forced_and_legacy_objects_are_ours_only_when_recorded() -> None:
    (obj,) = prep(cm("a", v="1"))
    created = make([obj])
    assert created.applies[0].op is Op.CREATE and not created.applies[0].force
    legacy = hand_made(cm("a", v="1"))
    legacy["metadata"]["labels"] = {APP_LABEL: "web"}  # applied by fleet before tracking ids
    assert make([obj], live={obj.key: legacy}).conflicts  # a label alone is not ownership
    taken = make([obj], live={obj.key: legacy}, inventory={obj.key: "v1"})
    assert taken.applies[0].op is Op.UPDATE and taken.applies[0].force


def test_adopted_objects_are_released_unless_delete_adopted() -> None:
    keep, adopted = prep(cm("keep"), cm("adopted"))
    live = {keep.key: live_of(keep), adopted.key: live_of(adopted, uid="u-a")}
    inventory = {keep.key: Entry("v1"), adopted.key: Entry("v1", "u-a", adopted=True)}
    released = make([keep], live=live, inventory=inventory, policy=PRUNE_ALL)
    assert [(s.key.name, s.op) for s in released.releases] == [("adopted", Op.RELEASE)]
    assert released.prunes == () and adopted.key not in released.inventory_after()
    assert adopted.key in released.inventory_after({adopted.key})  # a failed release stays
    deleted = make([keep], live=live, inventory=inventory, policy=PRUNE_ALL, delete_adopted=True)
    assert [s.key.name for s in deleted.prunes] == ["adopted"] and deleted.releases == ()


def test_shared_namespace_joins_is_released_and_pruned_only_by_its_last_owner() -> None:
    (ns,) = prep(shared_ns())
    (other_ns,) = prep(shared_ns(), tracking=THEIRS)
    theirs = live_of(other_ns)
    joined = make([ns], live={ns.key: theirs})
    assert joined.applies[0].op is Op.UPDATE and not joined.applies[0].force
    both = copy.deepcopy(theirs)
    both["metadata"]["annotations"][plan.owner_key(MINE)] = MINE
    assert make([ns], live={ns.key: both}).applies[0].op is Op.UNCHANGED
    entry = {ns.key: Entry("v1", "u-1", shared=True)}
    (keep,) = prep(cm("keep"))
    live = {ns.key: both, keep.key: live_of(keep)}
    leaving = make([keep], live=live, inventory={**entry, keep.key: Entry("v1")}, policy=PRUNE_ALL)
    assert [s.op for s in leaving.releases] == [Op.RELEASE] and leaving.prunes == ()
    alone = {ns.key: live_of(ns), keep.key: live_of(keep)}
    last = make([keep], live=alone, inventory={**entry, keep.key: Entry("v1")}, policy=PRUNE_ALL)
    assert [s.key for s in last.prunes] == [ns.key]
    held = make([keep], live=alone, inventory={**entry, keep.key: Entry("v1")})
    assert last.releases == () and "opts in" in held.blocked[0].reason
    (declared,) = prep({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}})
    clash = make([declared], live={ns.key: theirs}, adopt=True)
    assert clash.applies == () and "shared by fleet app other" in clash.conflicts[0].reason
    by_hand = make([ns], live={ns.key: hand_made(shared_ns(), namespace="")})
    assert by_hand.applies == () and "used as is" in by_hand.kept[0].reason
    assert by_hand.inventory_after() == {}


def test_guards_count_the_render_not_the_namespace_fleet_adds() -> None:
    ns, *objs = prep(shared_ns(), *(cm(f"c{i}") for i in range(6)))
    live = {o.key: live_of(o) for o in [ns, *objs]}
    inventory = {ns.key: Entry("v1", "u-1", shared=True)} | {o.key: Entry("v1") for o in objs}
    empty = make([ns], live=live, inventory=inventory, policy=PrunePolicy(max_share=1.0))
    assert empty.prunes == () and empty.refused is not None and "empty" in empty.refused
    assert len(empty.blocked) == 6
    (one,) = prep(cm("c0"))
    share = make([ns, one], live=live, inventory=inventory)
    assert share.prunes == () and share.refused is not None and "5 of 6" in share.refused


def test_a_rewind_holds_its_prunes_until_consent() -> None:
    a, b = prep(cm("a"), cm("b"))
    live = {a.key: live_of(a), b.key: live_of(b)}
    inventory = {a.key: Entry("v1"), b.key: Entry("v1")}
    rewound = "rewound from 1111 to 2222"
    held = make([a], live=live, inventory=inventory, rewound=rewound)
    assert held.prunes == () and held.blocked[0].reason.startswith(rewound)
    assert held.refused is not None and held.rewound == rewound
    consented = make(
        [a], live=live, inventory=inventory, rewound=rewound, policy=PrunePolicy(consent=True)
    )
    assert [s.key for s in consented.prunes] == [b.key]


def test_inventory_reads_the_old_format_and_records_uids_and_adoption() -> None:
    key = ObjectKey("", "ConfigMap", "prod", "a")
    old = {"data": {"objects": '[["v1","ConfigMap","prod","a"]]', "revision": "r", "digest": "d"}}
    inventory = apply.Inventory.from_configmap("web", old)
    assert inventory.entries == {key: "v1"} and inventory.record(key) == apply.Record()
    new = apply.Inventory(
        app="web", entries={key: "v1"}, records={key: apply.Record("u-1", adopted=True)}
    )
    back = apply.Inventory.from_configmap("web", new.to_configmap())
    assert back.record(key) == apply.Record("u-1", adopted=True) and back.same_as(new)


def test_same_as_is_whether_the_configmaps_would_be_equal() -> None:
    """same_as compares what to_configmap writes, without writing it: each pair below agrees."""
    a, b = ObjectKey("", "ConfigMap", "prod", "a"), ObjectKey("apps", "Deployment", "prod", "b")
    base = apply.Inventory(
        app="web",
        entries={a: "v1", b: "apps/v1"},
        revision="r1",
        digest="d1",
        records={a: apply.Record("u-1")},
        resource_version="7",
    )
    variants = [
        dataclasses.replace(base, resource_version="8"),  # not what it says
        dataclasses.replace(base, entries={b: "apps/v1", a: "v1"}),  # another order
        dataclasses.replace(base, records={**base.records, b: apply.Record()}),  # nothing to say
        dataclasses.replace(
            base, records={**base.records, ObjectKey("", "X", "", "gone"): apply.Record("u")}
        ),
        dataclasses.replace(base, revision="r2"),
        dataclasses.replace(base, digest="d2"),
        dataclasses.replace(base, entries={a: "v1"}),
        dataclasses.replace(base, records={a: apply.Record("u-1", adopted=True)}),
        dataclasses.replace(base, app="api"),
        apply.Inventory.from_configmap("web", base.to_configmap()),
    ]
    for other in variants:
        assert base.same_as(other) == (base.to_configmap() == other.to_configmap()), other
    assert [base.same_as(v) for v in variants] == [True] * 4 + [False] * 5 + [True]
    assert not base.same_as(None)
