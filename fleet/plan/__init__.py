"""Plan: desired vs inventory vs live, to an ordered list of writes. Pure, no I/O.

:func:`prepare` fills in namespaces, fleet's labels, the tracking id and digests each desired
object; :func:`make_plan` pairs them with the inventory and the live objects, decides ownership
(:mod:`fleet.plan.owning`) and applies the prune safety rules (:mod:`fleet.plan.pruning`);
:mod:`fleet.plan.projects` checks objects against the app's project before any of that.
"""

from __future__ import annotations

from fleet.plan.comparing import IgnoreRule, in_sync, pointers_for, without_pointers
from fleet.plan.model import (
    ADOPT_ANNOTATION,
    APP_LABEL,
    DIGEST_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OWNERS_PREFIX,
    PRUNE_ANNOTATION,
    SHARED_MARK_ANNOTATION,
    TRACKING_ANNOTATION,
    Blocked,
    Conflict,
    DesiredObject,
    Entry,
    Op,
    Ownership,
    Plan,
    PrunePolicy,
    Stage,
    Step,
)
from fleet.plan.owning import (
    NOT_FLEET,
    Tracking,
    describe_owner,
    field_manager,
    is_ours,
    owner_key,
    owners_of,
    tracking_id,
    tracking_of,
)
from fleet.plan.planning import make_plan, stage_of
from fleet.plan.preparing import Scopes, prepare, scopes_declared_by

__all__ = [
    "ADOPT_ANNOTATION",
    "APP_LABEL",
    "DIGEST_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "NOT_FLEET",
    "OWNERS_PREFIX",
    "PRUNE_ANNOTATION",
    "SHARED_MARK_ANNOTATION",
    "TRACKING_ANNOTATION",
    "Blocked",
    "Conflict",
    "DesiredObject",
    "Entry",
    "IgnoreRule",
    "Op",
    "Ownership",
    "Plan",
    "PrunePolicy",
    "Scopes",
    "Stage",
    "Step",
    "Tracking",
    "describe_owner",
    "field_manager",
    "in_sync",
    "is_ours",
    "make_plan",
    "owner_key",
    "owners_of",
    "pointers_for",
    "prepare",
    "scopes_declared_by",
    "stage_of",
    "tracking_id",
    "tracking_of",
    "without_pointers",
]
