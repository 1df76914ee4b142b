"""Is a live object already what fleet wants? A pure comparison, and ignoreDifferences.

Server-side apply leaves every field fleet did not set to the server (defaults, other managers),
so "in sync" means: every field fleet sends has the same value live. Maps compare key by key,
lists element by element with equal length, scalars by value. A ``null`` fleet sends means "no
opinion", and an empty map or list equals an absent one (the server drops them). A Secret's
``stringData`` is compared with the base64 ``data`` the server keeps. ignoreDifferences are JSON
pointers (RFC 6901) removed from both sides before comparing.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleet.types import Manifest, ObjectKey

__all__ = ["IgnoreRule", "contains", "in_sync", "pointers_for", "without_pointers"]


@dataclass(frozen=True)
class IgnoreRule:
    """JSON pointers to ignore on objects of a kind (and optionally one name/namespace)."""

    kind: str
    pointers: tuple[str, ...]
    group: str = ""
    name: str = ""
    namespace: str = ""

    def matches(self, key: ObjectKey) -> bool:
        return (
            self.kind == key.kind
            and self.group == key.group
            and self.name in ("", key.name)
            and self.namespace in ("", key.namespace)
        )


def pointers_for(rules: Iterable[IgnoreRule], key: ObjectKey) -> tuple[str, ...]:
    """Every pointer of every rule that applies to `key`."""
    return tuple(p for rule in rules if rule.matches(key) for p in rule.pointers)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def without_pointers(document: Manifest, pointers: Iterable[str]) -> Manifest:
    """A deep copy of `document` with the values at `pointers` removed (missing ones ignored)."""
    result = copy.deepcopy(document)
    for pointer in pointers:
        tokens = [_unescape(t) for t in pointer.split("/")[1:]] if pointer else []
        if tokens:
            _remove(result, tokens)
    return result


def _remove(node: Any, tokens: list[str]) -> None:
    *path, last = tokens
    for token in path:
        node = _child(node, token)
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        del node[int(last)]


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None


def contains(live: Any, wanted: Any) -> bool:
    """True when every field set in `wanted` has the same value in `live`."""
    if wanted is None:
        return True
    if wanted in ({}, []):  # the server drops an empty map or list
        return live is None or live == wanted
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(
            contains(live.get(k), v) if v is not None else True for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(contains(lv, wv) for lv, wv in zip(live, wanted, strict=True))
        )
    if isinstance(wanted, bool) or isinstance(live, bool):
        return wanted is live
    return bool(wanted == live)


def _secret_view(desired: Manifest) -> Manifest:
    """Fold a Secret's ``stringData`` into ``data``, as the server stores it."""
    string_data = desired.get("stringData")
    if desired.get("kind") != "Secret" or desired.get("apiVersion") != "v1" or not string_data:
        return desired
    folded = {k: v for k, v in desired.items() if k != "stringData"}
    data = dict(desired.get("data") or {})
    for name, value in string_data.items():
        data[name] = base64.b64encode(str(value).encode()).decode()
    folded["data"] = data
    return folded


def in_sync(desired: Manifest, live: Manifest, *, ignore: Iterable[str] = ()) -> bool:
    """Whether `live` already holds every field of `desired`, pointers in `ignore` aside."""
    pointers = tuple(ignore)
    wanted = _secret_view(desired)
    if pointers:
        wanted = without_pointers(wanted, pointers)
    return contains(live, wanted)
