"""What a sync of one app on one cluster would change, per object, without writing.

The desired objects are prepared as :func:`fleet.reconcile.syncing.sync` prepares them, then
diffed by server-side dry-run (:func:`fleet.apply.diff_objects`), the app's ignoreDifferences
JSON pointers removed from both sides, with the app instance's own field manager. Objects the
sync would prune are listed as well (only those that are this instance's: see fleet.plan.owning),
and an object in conflict (another app's, or one fleet did not create) is an error naming its
owner, not a diff: the sync will not write it.
"""

from __future__ import annotations

from fleet import apply, plan
from fleet.reconcile.syncing import AppSync
from fleet.types import Manifest, ObjectKey, RenderedSet

__all__ = ["diff"]


async def diff(
    cluster: apply.Cluster, app: AppSync, rendered: RenderedSet
) -> tuple[list[apply.ObjectDiff], list[ObjectKey]]:
    """Per-object diffs of `rendered` against `cluster`, and the keys a sync would prune."""
    kinds = {(str(m.get("apiVersion", "")), str(m.get("kind", ""))) for m in rendered.objects}
    scopes = await apply.scopes(cluster, kinds)
    tracking = app.tracking(cluster.name)
    options = app.apply_options(cluster.name)
    desired = plan.prepare(
        rendered.objects, app=app.name, namespace=app.namespace, scopes=scopes, tracking=tracking
    )
    previous = await apply.read_inventory(cluster, app.inventory_id)
    before = dict(previous.entries) if previous else {}
    valid = [d for d in desired if d.problem is None]
    live = await apply.read_live(cluster, {**before, **{d.key: d.api_version for d in valid}})
    the_plan = plan.make_plan(
        desired,
        app=app.name,
        inventory=before,
        live=live,
        policy=app.prune,
        ignore=app.ignore,
        ownership=app.ownership(cluster.name),
    )
    conflicts = {c.key: c.reason for c in the_plan.conflicts}
    targets = [_Target(d) for d in valid if d.key not in conflicts]

    def normalize(key: ObjectKey, obj: Manifest) -> Manifest:
        return plan.without_pointers(obj, plan.pointers_for(app.ignore, key))

    diffs = await apply.diff_objects(cluster, targets, options=options, normalize=normalize)
    diffs += [
        apply.ObjectDiff(d.key, apply.DiffAction.ERROR, d.problem or "")
        for d in desired
        if d.problem is not None
    ]
    diffs += [
        apply.ObjectDiff(key, apply.DiffAction.ERROR, f"conflict: {reason}")
        for key, reason in sorted(conflicts.items())
    ]
    return diffs, [s.key for s in the_plan.prunes]


class _Target:
    """A desired object as apply's :class:`~fleet.apply.Target` (no verify: diff only)."""

    def __init__(self, desired: plan.DesiredObject) -> None:
        self.key = desired.key
        self.api_version = desired.api_version
        self.manifest = desired.manifest
        self.verify = False
