"""Apply: every write fleet makes to a cluster, and the reads that decide them.

Server-side apply, prune and release (:mod:`fleet.apply.applying`), the in-cluster inventory
(:mod:`fleet.apply.inventory`), cached discovery (:mod:`fleet.apply.discovery`), dry-run diffs
(:mod:`fleet.apply.diffing`) and watches for drift (:mod:`fleet.apply.watching`), all over the
small JSON client of :mod:`fleet.apply.kube`.
"""

from __future__ import annotations

from fleet.apply.applying import (
    ApplyOptions,
    Marks,
    ReadError,
    ReadStalled,
    ReadTransient,
    Target,
    apply_objects,
    delete_objects,
    dry_run,
    read_error,
    read_live,
    release_objects,
)
from fleet.apply.changes import NOT_SYNCED, Change, ChangeSet, Outcome, object_name
from fleet.apply.diffing import DiffAction, ObjectDiff, diff_objects
from fleet.apply.discovery import Resource, forget, resolve, scopes
from fleet.apply.inventory import (
    Inventory,
    InventoryConflict,
    Record,
    read_inventory,
    write_inventory,
)
from fleet.apply.kube import ApiError, Cluster, connect

__all__ = [
    "NOT_SYNCED",
    "ApiError",
    "ApplyOptions",
    "Change",
    "ChangeSet",
    "Cluster",
    "DiffAction",
    "Inventory",
    "InventoryConflict",
    "Marks",
    "ObjectDiff",
    "Outcome",
    "ReadError",
    "ReadStalled",
    "ReadTransient",
    "Record",
    "Resource",
    "Target",
    "apply_objects",
    "connect",
    "delete_objects",
    "diff_objects",
    "dry_run",
    "forget",
    "object_name",
    "read_error",
    "read_inventory",
    "read_live",
    "release_objects",
    "resolve",
    "scopes",
    "write_inventory",
]
