"""Reading a drop-in kubeconfig of ``clusters/``: the cluster's name, labels and server.

The file stem is the cluster's name (a DNS label); the current context picks the cluster and user;
labels come from the context's ``fleet`` extension (``extension: {labels: {...}}``). Only the
structure is checked here, with errors that name the file and never echo credentials; connecting
is the registry's job. Files that are not ``.yaml``/``.yml``/``.kubeconfig``, or that start with a
dot (editors' temp files, our own atomic writes), are not clusters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import ConfigError
from fleet.types import ClusterRef

__all__ = ["ClusterFile", "is_cluster_file", "parse", "read"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUFFIXES = (".yaml", ".yml", ".kubeconfig")
# libyaml's safe loader when PyYAML was built with it (its wheels are): a kubeconfig parses in
# ~0.15 ms instead of ~2.6 ms, which is most of the first scan of a 1,000-entry clusters/ dir
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_BYTES = 1 * 2**20


@dataclass(frozen=True)
class ClusterFile:
    """A parsed kubeconfig: who the cluster is, and the document to connect with."""

    ref: ClusterRef
    server: str
    path: Path
    document: Mapping[str, Any] = field(repr=False)
    extension: Mapping[str, Any] = field(default_factory=dict)  # the whole fleet extension


def is_cluster_file(path: Path) -> bool:
    return path.suffix in _SUFFIXES and not path.name.startswith(".")


def _by_name(document: Mapping[str, Any], section: str, name: str, path: Path) -> Mapping[str, Any]:
    entries = document.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: {section} must be a list")
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            body = entry.get(section[:-1])  # clusters -> cluster, users -> user
            if not isinstance(body, Mapping):
                raise ConfigError(f"{path}: {section[:-1]} {name!r} has no {section[:-1]} body")
            return body
    raise ConfigError(f"{path}: no {section[:-1]} named {name!r}")


def parse(path: Path, document: Any) -> ClusterFile:
    """Check the structure of kubeconfig `document` read from `path`."""
    name = path.stem
    if not _NAME.fullmatch(name) or len(name) > 63:
        raise ConfigError(f"{path}: the file stem {name!r} is not a valid cluster name (DNS label)")
    if not isinstance(document, Mapping) or document.get("kind", "Config") != "Config":
        raise ConfigError(f"{path}: not a kubeconfig (expected kind: Config)")
    current = document.get("current-context")
    if not current:
        raise ConfigError(f"{path}: no current-context")
    context = _by_name(document, "contexts", str(current), path)
    cluster = _by_name(document, "clusters", str(context.get("cluster")), path)
    _by_name(document, "users", str(context.get("user")), path)
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(f"{path}: cluster {context.get('cluster')!r} has no http(s) server URL")
    extension: Mapping[str, Any] = {}
    for item in context.get("extensions") or []:
        if isinstance(item, Mapping) and item.get("name") == "fleet":
            extension = item.get("extension") or {}
            if not isinstance(extension, Mapping):
                raise ConfigError(f"{path}: the fleet extension must be a mapping")
    labels = extension.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in labels.items()
    ):
        raise ConfigError(f"{path}: fleet extension labels must map strings to strings")
    return ClusterFile(
        ref=ClusterRef(name=name, labels={k: str(v) for k, v in labels.items()}),
        server=server,
        path=path,
        document=document,
        extension=extension,
    )


def read(path: Path) -> ClusterFile:
    """Read and check the kubeconfig at `path`."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ConfigError(f"{path}: larger than {_MAX_BYTES} bytes")
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 (safe)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{at}") from None  # the text may hold secrets
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse(path, document)
