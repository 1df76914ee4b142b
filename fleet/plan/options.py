"""Argo CD's per-object options, read from an object's annotations. Pure.

``argocd.argoproj.io/sync-options`` and ``argocd.argoproj.io/compare-options`` are comma lists
of ``Name=value`` (a bare ``Name`` is ``Name=true`` for compare options). What each does here:

- ``Prune=false``: the object is never pruned when it leaves git; the prune shows as held.
- ``Delete=false``: kept when the app is deleted; fleet never deletes an app's objects when the
  app leaves, so it is honoured as it stands.
- ``Replace=true``: written with a PUT (replace), or a POST when absent, not a server-side apply;
  with ``Force=true`` as well, deleted and created again (``kubectl replace --force``).
- ``ServerSideApply=true``, ``Validate=false|true``, ``SkipDryRunOnMissingResource=true``,
  ``CreateNamespace=...`` (app-level here), ``ApplyOutOfSyncOnly=true`` and ``PruneLast=true``:
  accepted; fleet always applies server-side, never dry-runs a missing kind, writes only what
  differs, and prunes after the last sync wave.
- compare option ``IgnoreExtraneous``: a prune of the object that is held does not make the app
  OutOfSync.

Anything else (an unknown name, or a value fleet does not act on, such as ``Prune=confirm``) is a
warning naming the object and the option, and the object is written as if the option were absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleet.types import Manifest, ObjectKey

__all__ = ["COMPARE_OPTIONS", "SYNC_OPTIONS", "ObjectOptions", "options_of"]

SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
COMPARE_OPTIONS = "argocd.argoproj.io/compare-options"

_ACCEPTED = {
    ("serversideapply", "true"),
    ("validate", "false"),
    ("validate", "true"),
    ("skipdryrunonmissingresource", "true"),
    ("createnamespace", "true"),
    ("createnamespace", "false"),
    ("applyoutofsynconly", "true"),
    ("prunelast", "true"),
    ("prune", "true"),
    ("delete", "true"),
    ("delete", "false"),
    ("replace", "false"),
    ("force", "false"),
}


@dataclass(frozen=True)
class ObjectOptions:
    """What an object's own annotations ask of a sync; `warnings` name what fleet ignored."""

    prune: bool = True
    delete: bool = True
    replace: bool = False
    force: bool = False
    ignore_extraneous: bool = False
    warnings: tuple[str, ...] = ()


def _pairs(text: str, *, bare: str) -> list[tuple[str, str, str]]:
    """(name lower-cased, value lower-cased, the option as written) of a comma list."""
    out = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        out.append((name.strip().lower(), (value.strip() or bare).lower(), item))
    return out


def options_of(manifest: Manifest) -> ObjectOptions:
    """The options `manifest` asks for (see the module); never raises."""
    metadata = manifest.get("metadata") or {}
    annotations: Mapping[str, object] = metadata.get("annotations") or {}
    key = ObjectKey.of(manifest)
    who = f"{key.kind} {key.namespace + '/' if key.namespace else ''}{key.name or '(generated)'}"
    values = {"prune": True, "delete": True, "replace": False, "force": False}
    warnings: list[str] = []
    for name, value, written in _pairs(str(annotations.get(SYNC_OPTIONS, "")), bare=""):
        if name == "prune" and value == "false":
            values["prune"] = False
        elif name == "delete" and value == "false":
            values["delete"] = False
        elif name in ("replace", "force") and value == "true":
            values[name] = True
        elif (name, value) not in _ACCEPTED:
            warnings.append(
                f"{who}: {SYNC_OPTIONS} {written!r} is not supported by fleet and is ignored"
            )
    ignore_extraneous = False
    for name, value, written in _pairs(str(annotations.get(COMPARE_OPTIONS, "")), bare="true"):
        if name == "ignoreextraneous" and value == "true":
            ignore_extraneous = True
        elif name not in ("serversidediff", "ignoreextraneous"):
            warnings.append(
                f"{who}: {COMPARE_OPTIONS} {written!r} is not supported by fleet and is ignored"
            )
    if values["force"] and not values["replace"]:
        warnings.append(f"{who}: {SYNC_OPTIONS} Force=true acts only with Replace=true; ignored")
    return ObjectOptions(
        prune=values["prune"],
        delete=values["delete"],
        replace=values["replace"],
        force=values["force"] and values["replace"],
        ignore_extraneous=ignore_extraneous,
        warnings=tuple(warnings),
    )
