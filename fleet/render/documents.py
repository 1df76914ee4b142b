"""Decoding manifests: YAML and JSON in, validated Kubernetes objects out, within limits.

Every byte a renderer yields passes here. A file over the size limit is refused before it is
parsed. YAML is composed to a node graph first and its *expanded* size counted (aliases count as
often as they are used, memoised per node, so the count itself is cheap); a "billion laughs" graph
is refused before anything is built. Multi-document streams are split, empty documents dropped,
``kind: List`` flattened, and each object must carry ``apiVersion``, ``kind`` and
``metadata.name`` or ``metadata.generateName``. Errors are :class:`~fleet.errors.StalledError`
naming the file and document.

An object with ``generateName`` and no name (the usual form of a hook Job) is valid: the API server
names it when it is created, so it has no identity before that. It passes through unchanged and
:func:`generated_name` tells it apart; the plan creates it (a POST, never a server-side apply,
which needs a name) and never compares or prunes it by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from fleet.errors import StalledError
from fleet.types import Manifest

__all__ = ["DocumentLimits", "generated_name", "load_yaml", "objects_of", "parse_documents"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class DocumentLimits:
    """Bounds on what one file may cost to decode."""

    max_file_bytes: int = 4 * 1024 * 1024
    max_nodes: int = 200_000  # per document, after alias expansion


def parse_documents(data: bytes, *, source: str, limits: DocumentLimits) -> list[Manifest]:
    """The objects in `data` (from `source`, a name for messages)."""
    if len(data) > limits.max_file_bytes:
        raise StalledError(
            f"{source}: file is {len(data)} bytes, over the limit of {limits.max_file_bytes}"
        )
    if source.endswith(".json"):
        try:
            docs: list[Any] = [json.loads(data)]
        except ValueError as exc:
            raise StalledError(f"{source}: invalid JSON: {exc}") from None
    else:
        docs = load_yaml(data, source=source, limits=limits)
    return objects_of(docs, source=source)


def objects_of(docs: list[Any], *, source: str) -> list[Manifest]:
    """The objects of decoded documents `docs` (from `source`): checked, Lists flattened."""
    objects: list[Manifest] = []
    for index, doc in enumerate(docs):
        objects.extend(_objects(doc, where=f"{source} (document {index + 1})"))
    return objects


def load_yaml(data: bytes, *, source: str, limits: DocumentLimits) -> list[Any]:
    """The YAML documents of `data`, decoded within `limits` (no Kubernetes checks)."""
    loader = _Loader(data)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            size = _expanded_size(node, memo={}, path=set(), limit=limits.max_nodes)
            if size > limits.max_nodes:
                raise StalledError(
                    f"{source} (document {len(docs) + 1}): expands to over {limits.max_nodes} "
                    "nodes through YAML aliases (a YAML bomb?); refused"
                )
            docs.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        raise StalledError(f"{source}: invalid YAML: {_short(exc)}") from None
    finally:
        loader.dispose()
    return docs


def _expanded_size(node: yaml.Node, *, memo: dict[int, int], path: set[int], limit: int) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    if key in path:
        return limit + 1  # a recursive alias expands without end
    size = 1
    if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
        path.add(key)
        children: list[yaml.Node] = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        for child in children:
            size += _expanded_size(child, memo=memo, path=path, limit=limit)
            if size > limit:
                break
        path.discard(key)
    memo[key] = size
    return size


def _objects(doc: Any, *, where: str) -> list[Manifest]:
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise StalledError(f"{where}: expected a mapping, found {type(doc).__name__}")
    if doc.get("kind") == "List":
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise StalledError(f"{where}: a List's items must be a list")
        return [o for i, item in enumerate(items) for o in _objects(item, where=f"{where}[{i}]")]
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    missing = [
        field
        for field, value in (("apiVersion", doc.get("apiVersion")), ("kind", doc.get("kind")))
        if not isinstance(value, str) or not value
    ]
    if (not isinstance(name, str) or not name) and generated_name(doc) is None:
        missing.append("metadata.name (or metadata.generateName)")
    if missing:
        raise StalledError(f"{where}: object without {', '.join(missing)}")
    return [doc]


def generated_name(obj: Any) -> str | None:
    """The ``generateName`` prefix of an object that has no ``metadata.name``, else None."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict) or metadata.get("name"):
        return None
    prefix = metadata.get("generateName")
    return prefix if isinstance(prefix, str) and prefix else None


def _short(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())[:300]
