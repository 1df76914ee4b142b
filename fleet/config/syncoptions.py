"""An app's ``syncPolicy.syncOptions`` (Argo CD's ``Name=value`` list), every entry read.

Argo CD matches these strings exactly and skips what it does not know, so a typo or an option
fleet does not implement would otherwise pass in silence. Here each entry is one of:

- **acted on**: ``CreateNamespace=true|false`` (the destination namespace is applied too) and
  ``Prune=false`` (the app never prunes, as ``syncPolicy.prune: false``);
- **accepted**, because fleet already behaves so or the difference cannot change what lands:
  ``ServerSideApply=true`` (fleet always applies server-side), ``Validate=true|false`` (the API
  server validates a server-side apply), ``ApplyOutOfSyncOnly=true|false`` (fleet writes only
  what differs), ``PruneLast=true|false`` (fleet prunes after the last sync wave),
  ``SkipDryRunOnMissingResource=true``, ``FailOnSharedResource=true|false`` (fleet never takes an
  object another app owns), ``PrunePropagationPolicy=background`` (fleet's), ``Prune=true``,
  ``Replace=false``, ``Force=false``, ``Delete=true|false`` (fleet never deletes an app's objects
  when the app leaves), ``ClientSideApplyMigration=true|false``,
  ``RespectIgnoreDifferences=false``;
- **accepted with a warning** (logged at load, naming the app and the option): the value differs
  from what fleet does, but in a way that leaves the same objects in the cluster
  (``PrunePropagationPolicy=foreground``, ``ServerSideApply=false``,
  ``RespectIgnoreDifferences=true``), the warning says what fleet does instead;
- **refused** (a :class:`~fleet.errors.ConfigError` naming the field and the option, saying what
  fleet does and what to write instead): ``PrunePropagationPolicy=orphan``, ``Replace=true``,
  ``Force=true``, ``Prune=confirm``, a wrong-case or unknown name, a value fleet does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleet.errors import ConfigError

__all__ = ["SyncOptions", "parse"]

_OBJECT_ANNOTATION = "the annotation argocd.argoproj.io/sync-options"

_ACCEPTED: dict[str, frozenset[str]] = {
    "CreateNamespace": frozenset({"true", "false"}),
    "Prune": frozenset({"true", "false"}),
    "ServerSideApply": frozenset({"true"}),
    "Validate": frozenset({"true", "false"}),
    "ApplyOutOfSyncOnly": frozenset({"true", "false"}),
    "PruneLast": frozenset({"true", "false"}),
    "SkipDryRunOnMissingResource": frozenset({"true", "false"}),
    "FailOnSharedResource": frozenset({"true", "false"}),
    "PrunePropagationPolicy": frozenset({"background"}),
    "Replace": frozenset({"false"}),
    "Force": frozenset({"false"}),
    "Delete": frozenset({"true", "false"}),
    "ClientSideApplyMigration": frozenset({"true", "false"}),
    "RespectIgnoreDifferences": frozenset({"false"}),
}

_WARNED: dict[tuple[str, str], str] = {
    ("PrunePropagationPolicy", "foreground"): (
        "fleet prunes with background propagation: the object goes at once and the garbage "
        "collector removes its dependents after it; the same objects are gone in the end"
    ),
    ("ServerSideApply", "false"): (
        "fleet always applies server-side (it never applies client-side); the objects are the "
        "same, their managed fields name fleet's field manager"
    ),
    ("RespectIgnoreDifferences", "true"): (
        "fleet leaves the ignoreDifferences fields out of the comparison, so they alone never "
        "cause a write; but a write of a changed object sends them as git has them"
    ),
}

_REFUSED: dict[tuple[str, str], str] = {
    ("PrunePropagationPolicy", "orphan"): (
        "fleet prunes with background propagation, which deletes the dependents too; to keep "
        f"an object, mark it Prune=false with {_OBJECT_ANNOTATION}, or set syncPolicy.prune: false"
    ),
    ("Replace", "true"): (
        "fleet applies server-side; put Replace=true in "
        f"{_OBJECT_ANNOTATION} on the objects that need a replace, which fleet honours"
    ),
    ("Force", "true"): (
        "fleet applies server-side; put Replace=true,Force=true in "
        f"{_OBJECT_ANNOTATION} on the objects that must be deleted and created again"
    ),
    ("Prune", "confirm"): (
        "fleet has no prune confirmation; set syncPolicy.prune: false (or mark the objects "
        f"Prune=false with {_OBJECT_ANNOTATION}) and prune them by hand"
    ),
}


@dataclass(frozen=True)
class SyncOptions:
    """What an app's syncOptions ask fleet to do, and the warnings to log at load."""

    create_namespace: bool | None = None  # None: the option is absent
    prune: bool | None = None  # False: Prune=false, the app never prunes
    warnings: tuple[str, ...] = ()


def parse(options: Sequence[str], *, where: str) -> SyncOptions:
    """The syncOptions `options` of the field `where` (``<file>: apps[0] (a).syncPolicy``)."""
    create_namespace: bool | None = None
    prune: bool | None = None
    warnings: list[str] = []
    for index, option in enumerate(options):
        at = f"{where}.syncOptions[{index}]"
        name, equals, value = (part.strip() for part in option.partition("="))
        if not equals or not name:
            raise ConfigError(
                f"{at}: {option!r} is not an Argo CD sync option; write Name=value, "
                "e.g. CreateNamespace=true"
            )
        if (name, value) in _WARNED:
            warnings.append(f"{at}: {name}={value} is accepted: {_WARNED[name, value]}")
        elif (name, value) in _REFUSED:
            raise ConfigError(f"{at}: {name}={value} is not supported: {_REFUSED[name, value]}")
        elif name not in _ACCEPTED:
            raise ConfigError(f"{at}: {_unknown(name)}")
        elif value not in _ACCEPTED[name]:
            known = " or ".join(f"{name}={v}" for v in sorted(_ACCEPTED[name] | _others(name)))
            raise ConfigError(f"{at}: {option!r} is not a value fleet knows; write {known}")
        if name == "CreateNamespace":
            create_namespace = value == "true"
        elif name == "Prune":
            prune = False if value == "false" else prune is not False  # any false wins
    return SyncOptions(create_namespace=create_namespace, prune=prune, warnings=tuple(warnings))


def _others(name: str) -> set[str]:
    """The values of `name` fleet knows besides the accepted ones (warned or refused)."""
    return {v for n, v in (*_WARNED, *_REFUSED) if n == name}


def _unknown(name: str) -> str:
    match = next((known for known in _ACCEPTED if known.lower() == name.lower()), None)
    if match is not None:
        return (
            f"unknown sync option {name!r}; did you mean {match!r}? (Argo CD matches the name "
            "exactly and would ignore this one)"
        )
    return (
        f"unknown sync option {name!r}; fleet knows {', '.join(sorted(_ACCEPTED))} (see "
        "docs/config.md); remove it, or put an object's own option in "
        f"{_OBJECT_ANNOTATION}"
    )
