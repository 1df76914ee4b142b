"""Plan: desired vs inventory vs live, to an ordered list of writes. Pure, no I/O.

:func:`prepare` fills in namespaces and fleet's labels and digests each desired object;
:func:`make_plan` pairs them with the inventory and the live objects and applies the prune
safety rules. See :mod:`fleet.plan.planning` for the rules.
"""

from __future__ import annotations

from fleet.plan.comparing import IgnoreRule, in_sync, pointers_for, without_pointers
from fleet.plan.model import (
    APP_LABEL,
    DIGEST_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PRUNE_ANNOTATION,
    Blocked,
    DesiredObject,
    Op,
    Plan,
    PrunePolicy,
    Stage,
    Step,
)
from fleet.plan.planning import make_plan, stage_of
from fleet.plan.preparing import Scopes, prepare, scopes_declared_by

__all__ = [
    "APP_LABEL",
    "DIGEST_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "PRUNE_ANNOTATION",
    "Blocked",
    "DesiredObject",
    "IgnoreRule",
    "Op",
    "Plan",
    "PrunePolicy",
    "Scopes",
    "Stage",
    "Step",
    "in_sync",
    "make_plan",
    "pointers_for",
    "prepare",
    "scopes_declared_by",
    "stage_of",
    "without_pointers",
]
