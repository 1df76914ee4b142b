"""YAML decoding within limits, for every YAML that comes from outside: manifests and the config.

A YAML file is small on disk and may be huge in memory: aliases let one node be used many times,
and a "billion laughs" document (ten aliases of ten aliases of ...) expands to more nodes than any
machine holds, so a plain ``yaml.safe_load`` of it never returns. :func:`load_yaml` therefore
refuses a file over :attr:`YamlLimits.max_file_bytes` before parsing, composes each document to
its node graph first and counts its *expanded* size (an alias counts as often as it is used,
memoised per node, so the count itself is cheap), and refuses a document over
:attr:`YamlLimits.max_nodes` before anything is built. A recursive alias never ends, so it is
refused as over the limit.

This module sits at the bottom of fleet's layers (it imports nothing of fleet), so the config
(:mod:`fleet.config`) and the renderers (:mod:`fleet.render`) share one bounded loader. It
raises :class:`YamlRefused`, a :class:`ValueError` whose message names the source (and the
document); each caller turns it into its own error (``ConfigError``, ``StalledError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["YamlLimits", "YamlRefused", "load_yaml"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on what one file may cost to decode."""

    max_file_bytes: int = 4 * 1024 * 1024
    max_nodes: int = 200_000  # per document, after alias expansion


class YamlRefused(ValueError):
    """A YAML text that is too large, expands too far, or is not YAML; the message says which."""


def load_yaml(data: bytes | str, *, source: str, limits: YamlLimits | None = None) -> list[Any]:
    """The YAML documents of `data` (read from `source`, named in every message), within
    `limits` (default :class:`YamlLimits`); ``None`` for an empty document."""
    limits = limits or YamlLimits()
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_file_bytes:
        raise YamlRefused(
            f"{source}: file is {size} bytes, over the limit of {limits.max_file_bytes}"
        )
    loader = _Loader(data)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                docs.append(None)
                continue
            if _expanded_size(node, memo={}, path=set(), limit=limits.max_nodes) > limits.max_nodes:
                raise YamlRefused(
                    f"{source} (document {len(docs) + 1}): expands to over {limits.max_nodes} "
                    "nodes through YAML aliases (a YAML bomb?); refused, write the values out "
                    "or use fewer aliases"
                )
            docs.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        raise YamlRefused(f"{source}: invalid YAML: {short(exc)}") from None
    except RecursionError:
        raise YamlRefused(f"{source}: nested too deeply to decode; refused") from None
    finally:
        loader.dispose()
    return docs


def short(exc: yaml.YAMLError) -> str:
    """A YAML error on one line, bounded."""
    return " ".join(str(exc).split())[:300]


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
