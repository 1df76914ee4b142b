"""Patching one decoded object: JSON Patch, JSON merge patch, strategic merge patch (pure).

:func:`apply` picks the kind as Rancher Fleet's overlays do: a list is a JSON Patch (RFC 6902:
``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``); a mapping is a strategic merge
patch when the object is of a built-in Kubernetes API group, else a JSON merge patch (RFC 7386:
mappings merge, ``null`` deletes, anything else replaces).

The strategic merge is Kubernetes' for the lists people patch: lists of mappings keyed by their
merge key (``containers``, ``initContainers``, ``env``, ``volumes`` by ``name``, ``volumeMounts``
by ``mountPath``, container ``ports`` by ``containerPort`` and Service ``ports`` by ``port``, and
a few more in :data:`MERGE_KEYS`) merge item by item, ``$patch: delete`` on an item removes it,
``$patch: replace`` replaces a mapping or a list; every other list is replaced, as for Kubernetes'
atomic lists. Other ``$`` directives (``$retainKeys``, ``$setElementOrder``,
``$deleteFromPrimitiveList``) are refused by name. Errors name the patch (`where`) and the path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fleet.errors import StalledError
from fleet.types import split_api_version

__all__ = ["BUILTIN_GROUPS", "MERGE_KEYS", "apply", "json_patch", "merge_patch", "strategic"]

BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "node.k8s.io",
        "admissionregistration.k8s.io",
        "certificates.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
    }
)

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "conditions": "type",
    "resourceClaims": "name",
}


def apply(obj: Any, patch: Any, *, where: str) -> Any:
    """`obj` with `patch` applied (the kind chosen as the module docstring says)."""
    if isinstance(patch, list):
        return json_patch(obj, patch, where=where)
    if not isinstance(patch, Mapping):
        raise StalledError(f"{where}: a patch must be a list (JSON Patch) or a mapping")
    group = split_api_version(str(obj.get("apiVersion", ""))) if isinstance(obj, Mapping) else None
    if group is not None and group[0] in BUILTIN_GROUPS and "kind" in obj:
        return strategic(obj, patch, where=where, path="")
    return merge_patch(obj, patch)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: `patch` merged onto `target`."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic(target: Any, patch: Any, *, where: str, path: str) -> Any:
    """A strategic merge of mapping `patch` onto `target` (see the module docstring)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return copy.deepcopy(body)
    if directive is not None:
        raise StalledError(f"{where}: $patch: {directive!r} at {path or '/'} is not supported")
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in body.items():
        here = f"{path}/{key}"
        if key.startswith("$"):
            raise StalledError(f"{where}: directive {key} at {path or '/'} is not supported")
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value, where=where, path=here)
        else:
            result[key] = strategic(result.get(key), value, where=where, path=here)
    return result


def _merge_list(name: str, target: Any, patch: list[Any], *, where: str, path: str) -> list[Any]:
    if any(isinstance(i, Mapping) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, Mapping) and "$patch" in i)]
    key = _merge_key(name, target, patch)
    if key is None or not isinstance(target, list):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, Mapping) and "$patch" in i)]
    result = [copy.deepcopy(i) for i in target]
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            raise StalledError(f"{where}: an item of {path} has no merge key {key!r}")
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, Mapping) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(strategic({}, item, where=where, path=f"{path}[{item[key]}]"))
        else:
            result[index] = strategic(result[index], item, where=where, path=f"{path}[{item[key]}]")
    return result


def _merge_key(name: str, target: Any, patch: list[Any]) -> str | None:
    if name == "ports":
        items = [i for i in [*(target or []), *patch] if isinstance(i, Mapping)]
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(name)


def json_patch(target: Any, operations: list[Any], *, where: str) -> Any:
    """RFC 6902: `operations` applied to a copy of `target` in order."""
    doc = copy.deepcopy(target)
    for index, operation in enumerate(operations):
        at = f"{where}: operation {index}"
        if not isinstance(operation, Mapping) or not isinstance(operation.get("path"), str):
            raise StalledError(f"{at} needs an op and a path")
        op, path = operation.get("op"), operation["path"]
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(_value(operation, at)), at=at)
        elif op == "remove":
            doc = _remove(doc, path, at=at)[0]
        elif op == "replace":
            doc = _remove(doc, path, at=at)[0]
            doc = _add(doc, path, copy.deepcopy(_value(operation, at)), at=at)
        elif op in ("move", "copy"):
            source = operation.get("from")
            if not isinstance(source, str):
                raise StalledError(f"{at}: {op} needs from")
            value = copy.deepcopy(_get(doc, source, at=at))
            if op == "move":
                doc = _remove(doc, source, at=at)[0]
            doc = _add(doc, path, value, at=at)
        elif op == "test":
            if _get(doc, path, at=at) != _value(operation, at):
                raise StalledError(f"{at}: test of {path} failed")
        else:
            raise StalledError(f"{at}: op {op!r} is not a JSON Patch operation")
    return doc


def _value(operation: Mapping[str, Any], at: str) -> Any:
    if "value" not in operation:
        raise StalledError(f"{at} needs a value")
    return operation["value"]


def _tokens(pointer: str, at: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise StalledError(f"{at}: path {pointer!r} is not a JSON pointer")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


_END = "-"  # the JSON pointer token past a list's last item


def _index(container: list[Any], token: str, *, at: str, adding: bool = False) -> int:
    if adding and token == _END:
        return len(container)
    if not token.isdigit():
        raise StalledError(f"{at}: {token!r} is not a list index")
    index = int(token)
    if index > len(container) or (index == len(container) and not adding):
        raise StalledError(f"{at}: index {index} is out of range")
    return index


def _parent(doc: Any, pointer: str, at: str) -> tuple[Any, str]:
    tokens = _tokens(pointer, at)
    if not tokens:
        raise StalledError(f"{at}: the whole document cannot be the target here")
    parent = _get(
        doc, "".join(f"/{t.replace('~', '~0').replace('/', '~1')}" for t in tokens[:-1]), at=at
    )
    return parent, tokens[-1]


def _get(doc: Any, pointer: str, *, at: str) -> Any:
    node = doc
    for token in _tokens(pointer, at):
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, at=at)]
        else:
            raise StalledError(f"{at}: path {pointer!r} does not exist")
    return node


def _add(doc: Any, pointer: str, value: Any, *, at: str) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer, at)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, at=at, adding=True), value)
    else:
        raise StalledError(f"{at}: the parent of {pointer!r} is not a mapping or a list")
    return doc


def _remove(doc: Any, pointer: str, *, at: str) -> tuple[Any, Any]:
    parent, token = _parent(doc, pointer, at)
    if isinstance(parent, dict) and token in parent:
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, at=at))
    raise StalledError(f"{at}: path {pointer!r} does not exist")
