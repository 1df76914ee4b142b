"""Decoding manifests: YAML and JSON in, validated Kubernetes objects out, within limits.

Every byte a renderer yields passes here. YAML is decoded by :mod:`fleet.yamlsafe`, the one
bounded loader fleet has (the config uses it too): a file over the size limit is refused before it
is parsed, and a document whose alias expansion exceeds the node limit ("billion laughs") before
anything is built. Multi-document streams are split, empty documents dropped,
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
from typing import Any

from fleet import yamlsafe
from fleet.errors import StalledError
from fleet.types import Manifest
from fleet.yamlsafe import YamlLimits

__all__ = ["DocumentLimits", "generated_name", "load_yaml", "objects_of", "parse_documents"]

DocumentLimits = YamlLimits  # bounds on what one file may cost to decode (fleet.yamlsafe)


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
    """The YAML documents of `data`, decoded within `limits` (no Kubernetes checks): the one
    bounded loader of :mod:`fleet.yamlsafe`, its refusals as :class:`StalledError`."""
    try:
        docs = yamlsafe.load_yaml(data, source=source, limits=limits)
    except yamlsafe.YamlRefused as exc:
        raise StalledError(str(exc)) from None
    return [doc for doc in docs if doc is not None]


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
