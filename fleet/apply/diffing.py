"""Readable per-object diffs from a server-side dry-run: what a sync would change, and how.

For each target the live object is read and a dry-run apply asks the server what the object
would become (defaults, admission and other managers' fields included, so the diff shows real
changes only). Both sides lose what the server sets on its own (managed fields, resource version,
uid, timestamps, generation, status, fleet's digest annotation) and what the caller's
`normalize` drops (ignoreDifferences by JSON pointer), then are compared as sorted YAML.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import yaml

from fleet.apply import applying
from fleet.apply.kube import ApiError, Cluster
from fleet.types import Manifest, ObjectKey

__all__ = ["DiffAction", "ObjectDiff", "diff_objects", "render_diff", "strip_server_fields"]

_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
)
_SERVER_ANNOTATIONS = (
    "fleet.dev/applied-digest",
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
)


class DiffAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    NONE = "none"
    ERROR = "error"


@dataclass(frozen=True)
class ObjectDiff:
    key: ObjectKey
    action: DiffAction
    text: str = ""


def strip_server_fields(obj: Manifest) -> Manifest:
    """`obj` without the fields the server sets on its own."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_METADATA}
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": metadata}


def render_diff(key: ObjectKey, live: Manifest | None, predicted: Manifest) -> ObjectDiff:
    """The unified YAML diff of two stripped objects (live None: a creation)."""
    before = yaml.safe_dump(live, sort_keys=True).splitlines() if live is not None else []
    after = yaml.safe_dump(predicted, sort_keys=True).splitlines()
    lines = list(difflib.unified_diff(before, after, f"live/{key}", f"desired/{key}", lineterm=""))
    if live is None:
        return ObjectDiff(key, DiffAction.CREATE, "\n".join(lines))
    return ObjectDiff(key, DiffAction.UPDATE if lines else DiffAction.NONE, "\n".join(lines))


Normalize = Callable[[ObjectKey, Manifest], Manifest]


async def _diff_one(
    cluster: Cluster,
    target: applying.Target,
    options: applying.ApplyOptions,
    normalize: Normalize,
) -> ObjectDiff:
    key = target.key
    try:
        live = (await applying.read_live(cluster, {key: target.api_version})).get(key)
    except ApiError as exc:
        return ObjectDiff(key, DiffAction.ERROR, str(exc))
    try:
        predicted = await applying.dry_run(cluster, target, options=options)
    except ApiError as exc:
        if not (live is None and exc.status == 404 and key.namespace):
            return ObjectDiff(key, DiffAction.ERROR, str(exc))
        # its namespace does not exist yet (the same sync creates it): the server cannot dry-run
        # it, so the creation is shown as fleet would send it
        predicted = target.manifest
    before = None if live is None else normalize(key, strip_server_fields(live))
    return render_diff(key, before, normalize(key, strip_server_fields(predicted)))


async def diff_objects(
    cluster: Cluster,
    targets: Sequence[applying.Target],
    *,
    options: applying.ApplyOptions,
    normalize: Normalize = lambda _key, obj: obj,
) -> list[ObjectDiff]:
    """One :class:`ObjectDiff` per target, in order; no write is made (dry-run only)."""
    results: list[ObjectDiff] = []
    for target in targets:
        results.append(await _diff_one(cluster, target, options, normalize))
    return results
