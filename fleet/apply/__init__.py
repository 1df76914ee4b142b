"""Apply: every write fleet makes to a cluster, and the reads that decide them.

Server-side apply and prune (:mod:`fleet.apply.applying`), the in-cluster inventory
(:mod:`fleet.apply.inventory`), cached discovery (:mod:`fleet.apply.discovery`), dry-run diffs
(:mod:`fleet.apply.diffing`) and watches for drift (:mod:`fleet.apply.watching`), all over the
small JSON client of :mod:`fleet.apply.kube`.
"""

from __future__ import annotations

from fleet.apply.applying import (
    ApplyOptions,
    Target,
    apply_objects,
    delete_objects,
    dry_run,
    read_live,
)
from fleet.apply.changes import Change, ChangeSet, Outcome
from fleet.apply.diffing import DiffAction, ObjectDiff, diff_objects
from fleet.apply.discovery import Resource, forget, resolve, scopes
from fleet.apply.inventory import Inventory, read_inventory, write_inventory
from fleet.apply.kube import ApiError, Cluster, connect
from fleet.apply.watching import WatchEvent, watch_kind

__all__ = [
    "ApiError",
    "ApplyOptions",
    "Change",
    "ChangeSet",
    "Cluster",
    "DiffAction",
    "Inventory",
    "ObjectDiff",
    "Outcome",
    "Resource",
    "Target",
    "WatchEvent",
    "apply_objects",
    "connect",
    "delete_objects",
    "diff_objects",
    "dry_run",
    "forget",
    "read_inventory",
    "read_live",
    "resolve",
    "scopes",
    "watch_kind",
    "write_inventory",
]
