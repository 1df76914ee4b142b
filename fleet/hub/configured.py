"""What the hub takes from its config files beyond the apps: refused sources, notification sinks,
and which cluster entries are one API server (pure: the files are read by the config loader)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleet.config import Config
from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError
from fleet.notify import SinkSpec, parse_notifications
from fleet.sources import check_repo_url, repo_id
from fleet.types import canonical_json

__all__ = ["checked_sources", "identity", "repo_id_or_none", "sinks_in"]


def repo_id_or_none(url: str) -> str:
    """The repository key of `url`, or ``""`` for a URL fleet would refuse."""
    try:
        return repo_id(url).key
    except ConfigError:
        return ""


def checked_sources(config: Config) -> tuple[Config, list[str]]:
    """The config without apps whose repoURL is refused (credentials in it), and why."""
    kept, refused = [], []
    for app in config.apps:
        try:
            check_repo_url(app.source.repo_url, app=app.name)
        except ConfigError as exc:
            refused.append(f"app {app.name} ({app.origin or 'config'}): {exc}")
            continue
        kept.append(app)
    return dataclasses.replace(config, apps=tuple(kept)), refused


def identity(cluster: ClusterFile) -> str:
    """Who the hub is on which API server, by which route: entries equal in it share a cell."""
    document = cluster.document
    context_name = document.get("current-context")
    contexts = [c for c in document.get("contexts") or [] if isinstance(c, dict)]
    context = next((c.get("context") or {} for c in contexts if c.get("name") == context_name), {})
    users = [u for u in document.get("users") or [] if isinstance(u, dict)]
    user = next((u.get("user") for u in users if u.get("name") == context.get("user")), None)
    route = cluster.extension.get("ssh")
    identity = canonical_json({"server": cluster.server, "user": user, "route": route})
    return hashlib.sha256(identity).hexdigest()


def sinks_in(sources: Sequence[tuple[str, Sequence[Any]]], *, where: Path) -> tuple[SinkSpec, ...]:
    """The ``notifications:`` blocks of the YAML documents of each (file, documents), the config
    at `where` (named when a sink is declared twice)."""
    sinks: list[SinkSpec] = []
    for file, documents in sources:
        for document in documents:
            if isinstance(document, dict) and "notifications" in document:
                sinks += parse_notifications(document, where=file)
    names = [s.name for s in sinks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: notification sink {twice[0]!r} is declared twice")
    return tuple(sinks)
