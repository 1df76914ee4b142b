"""App of apps: an app whose path holds Argo CD Application documents, read from git at its commit.

Argo CD's app-of-apps pattern, in fleet's terms. A **parent** is declared in the config (the
loader sets :attr:`~fleet.config.App.applications`):

- in ``fleet.yaml``, ``apps[].applications: true``;
- on an Argo CD Application, the annotation ``fleet.dev/applications: "true"``.

A parent is never applied to a cluster. The hub renders it with the normal renderer (plain YAML,
kustomize or Helm, Helm-templated Applications being the common case) at the commit its
``targetRevision`` names, for the hub itself (``{{ cluster.name }}`` is the hub id, no labels).
Each rendered ``Application`` (``argoproj.io/v1alpha1``) becomes an app of the hub's config,
validated exactly as the Application documents of ``fleet.yaml`` are; each ``AppProject``
becomes a project the children may name. Any other kind is reported and ignored (nothing of a
parent reaches a cluster). Errors name the parent, the commit and the document.

Children join, change and leave with the parent's commits. A child that leaves is forgotten like
an app that left ``fleet.yaml``: its objects stay in the clusters (Argo CD without the
``resources-finalizer``), and its status says so. A bad child document does not stop its siblings:
a child seen before keeps its last good version, a new one is not added. A child may not take
the name of an app of the config, of a parent, or of another parent's child: the later claim is
refused, naming both (a child keeps its name against a newcomer). Argo CD calls app of apps an
admin-only tool because a child may name any project; fleet confines it: a child of a parent in
a project other than the open default must be in its parent's project, so a push to a team's
parent repository cannot reach beyond that team's project. A render that fails keeps the
parent's last good children. A child may not be a parent itself (no nesting yet): such a child
is refused by name, never applied as plain Applications.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.config import App, Config, Project
from fleet.config import loading as config_loading
from fleet.config.projects import OPEN_DEFAULT
from fleet.errors import ConfigError, FleetError, describe
from fleet.hub import apps as hub_apps
from fleet.hub import configured
from fleet.reconcile.desired import Desired, DesiredState
from fleet.sources import Sources, repo_id
from fleet.types import ClusterRef, Manifest

__all__ = ["Children", "Parents", "children_of", "parents"]

log = logging.getLogger(__name__)

_RETRY_CAP = 60.0  # seconds: a parent whose render failed is tried again at least this often
LEFT = (
    "left its parent app's Applications; its objects stay in the clusters (as Argo CD without "
    "the resources finalizer)"
)


def parents(config: Config) -> frozenset[str]:
    """The apps of `config` declared parents (``applications: true`` or the annotation)."""
    return frozenset(a.name for a in config.apps if a.applications)


@dataclass(frozen=True)
class Children:
    """What one render of a parent declares: its children, projects, and every problem."""

    apps: Mapping[str, App] = field(default_factory=dict)
    projects: tuple[Project, ...] = ()
    errors: tuple[str, ...] = ()


def _name_of(manifest: Manifest) -> str:
    metadata = manifest.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""


def children_of(
    parent: App,
    objects: Iterable[Manifest],
    *,
    commit: str,
    config: Config,
    previous: Mapping[str, App] | None = None,
) -> Children:
    """The children `objects` (a render of `parent` at `commit`) declare; pure.

    Each Application is validated alone, so one bad document stops only itself; a child in
    `previous` whose new document is bad keeps its previous version.
    """
    previous = previous or {}
    at = f"parent app {parent.name} at {repo_id(parent.source.repo_url).key}@{commit[:12]}"
    errors: list[str] = []
    documents: list[tuple[str, Manifest]] = []
    projects: list[Project] = []
    for manifest in objects:
        kind, name = str(manifest.get("kind", "")), _name_of(manifest)
        origin = f"{at} ({kind} {name})"
        if not str(manifest.get("apiVersion", "")).startswith("argoproj.io/") or kind not in (
            "Application",
            "AppProject",
        ):
            errors.append(
                f"{origin}: not an Argo CD Application or AppProject; a parent app holds only "
                "those, so it is applied nowhere (move it to an app of its own)"
            )
        elif kind == "AppProject":
            try:
                projects += config_loading.parse_projects([dict(manifest)], origin=origin)[0]
            except ConfigError as exc:
                errors.append(f"{exc} (this project is not added)")
        else:
            documents.append((origin, manifest))
    by_name = {p.name: p for p in config.projects}
    for project in projects:
        by_name.setdefault(project.name, project)
    found: dict[str, App] = {}
    for origin, manifest in documents:
        name = _name_of(manifest)
        try:
            child = _child(manifest, origin=origin, projects=by_name, parent=parent)
            if child.name in found:
                raise ConfigError(
                    f"{origin}: Application {child.name!r} is declared twice by this parent "
                    f"(also {found[child.name].origin})"
                )
        except ConfigError as exc:
            kept = previous.get(name)
            then = "its last good version stays in use" if kept else "it is not added"
            errors.append(f"{exc} ({then})")
            if kept is not None:
                found.setdefault(name, kept)
            continue
        found[child.name] = child
    return Children(apps=found, projects=tuple(projects), errors=tuple(errors))


def _child(manifest: Manifest, *, origin: str, projects: Mapping[str, Project], parent: App) -> App:
    # the schema and the parser of fleet.yaml's Applications
    (child,) = config_loading.parse_documents([dict(manifest)], origin=origin)
    if child.applications:
        raise ConfigError(
            f"{origin}: a parent app of a parent app (nested app of apps) is not supported yet; "
            "declare it in the config instead"
        )
    if parent.project_rules != OPEN_DEFAULT and child.project != parent.project:
        raise ConfigError(
            f"{origin}: app {child.name!r} names project {child.project!r}, but its parent app "
            f"{parent.name} is in project {parent.project!r}: a child may only be in its "
            f"parent's project (set spec.project: {parent.project}), or the parent in the open "
            "default project"
        )
    rules = projects.get(child.project)
    if rules is None and child.project == "default":
        # the config's default project, as the loader resolved it for the parent's siblings
        rules = parent.project_rules if parent.project == "default" else OPEN_DEFAULT
    if rules is None:
        raise ConfigError(
            f"{origin}: app {child.name!r} names project {child.project!r}, which is not "
            f"declared (declared: {', '.join(sorted({*projects, 'default'}))})"
        )
    return dataclasses.replace(child, project_rules=rules)


@dataclass
class _Parent:
    """One parent's last read: its app, the commit rendered, its children (last good each)."""

    app: App
    commit: str = ""
    children: Children = field(default_factory=Children)
    error: str = ""  # the render's error (the children of the last good render stay)
    failures: int = 0  # renders failed in a row: retried with backoff
    retry_at: float = 0.0
    accepted: tuple[str, ...] = ()  # the children in the effective config
    refused: tuple[str, ...] = ()


class Parents:
    """Every parent of the config, rendered at its commit; the children they declare."""

    def __init__(self, *, desired: DesiredState, sources: Sources, hub: str) -> None:
        self.desired = desired
        self.sources = sources
        self.hub = ClusterRef(name=hub)
        self._state: dict[str, _Parent] = {}
        self._owner: dict[str, str] = {}  # child name -> the parent whose child it was last

    def repos(self) -> dict[str, str]:
        """The repositories the parents read, key -> URL."""
        found: dict[str, str] = {}
        for state in self._state.values():
            url = state.app.source.repo_url
            found.setdefault(configured.repo_id_or_none(url), url)
        found.pop("", None)
        return found

    async def refresh(
        self, parents: list[App], *, config: Config, moved: set[str], force: bool
    ) -> bool:
        """Render the parents that are new, changed, `force`d or read a `moved` repository;
        true if any parent's children, errors or commit changed."""
        changed = False
        for name in set(self._state) - {p.name for p in parents}:
            del self._state[name]
            changed = True
        for app in parents:
            state = self._state.get(app.name)
            key = configured.repo_id_or_none(app.source.repo_url)
            retry = state is not None and bool(state.error) and time.monotonic() >= state.retry_at
            if state is None or state.app != app or force or key in moved or retry:
                changed |= await self._read(app, config=config, state=state)
        return changed

    async def _read(self, app: App, *, config: Config, state: _Parent | None) -> bool:
        before = dataclasses.replace(state) if state is not None else None
        state = state or _Parent(app)
        state.app = app
        self._state[app.name] = state
        refusal = hub_apps.source_refusal(app)
        if refusal:
            state.error, state.retry_at = refusal, float("inf")  # until the config changes
            return before is None or before.error != state.error
        try:
            desired = await self.desired.desired(hub_apps.app_source(app), self.hub)
        except Exception as exc:  # a bug below is this parent's error, never the config's
            log.exception("event=parent_render_crashed app=%s", app.name)
            desired = Desired(app.name, self.hub.name, None, error=FleetError(describe(exc)))
        if desired.error is not None or desired.rendered is None:
            state.error = f"parent app {app.name}: {desired.error} (its last good children stay)"
            state.failures += 1
            state.retry_at = time.monotonic() + min(_RETRY_CAP, 2.0**state.failures)
            log.warning("event=parent_render_failed app=%s error=%s", app.name, desired.error)
        else:
            state.error, state.failures = "", 0
            state.commit = desired.commit or ""
            state.children = children_of(
                app,
                desired.rendered.objects,
                commit=state.commit,
                config=config,
                previous=state.children.apps,
            )
            log.info(
                "event=parent_read app=%s commit=%s children=%d",
                app.name,
                state.commit[:12],
                len(state.children.apps),
            )
        return before is None or (before.commit, before.children, before.error) != (
            state.commit,
            state.children,
            state.error,
        )

    def compose(self, base: Config, *, parents: frozenset[str]) -> tuple[Config, list[str]]:
        """`base` without its parents, plus every parent's children; the problems found."""
        apps = [a for a in base.apps if a.name not in parents]
        owner = {a.name: f"app {a.name} of {a.origin or 'the config'}" for a in base.apps}
        problems: list[str] = []
        projects = list(base.projects)
        claims: list[tuple[bool, str, App]] = []  # (not the last owner, parent, child)
        for name in sorted(self._state):
            state = self._state[name]
            if name not in parents:
                continue
            if state.error:
                problems.append(state.error)
            problems += state.children.errors
            for child in state.children.apps.values():
                claims.append((self._owner.get(child.name) != name, name, child))
            known = {p.name for p in projects}
            projects += [p for p in state.children.projects if p.name not in known]
        accepted: dict[str, list[str]] = {name: [] for name in self._state}
        refused: dict[str, list[str]] = {name: [] for name in self._state}
        children: list[App] = []
        for _, parent, child in sorted(claims, key=lambda c: (c[0], c[1], c[2].name)):
            if child.name in owner:
                problems.append(
                    f"app {child.name} of parent app {parent} ({child.origin}) is refused: "
                    f"{owner[child.name]} has that name; rename one of them"
                )
                refused[parent].append(child.name)
                continue
            owner[child.name] = f"app {child.name} of parent app {parent} ({child.origin})"
            accepted[parent].append(child.name)
            children.append(child)
        checked, refusals = configured.checked_sources(Config(apps=tuple(children)))
        problems += refusals
        self._owner = {c: p for p, names in accepted.items() for c in names}
        for name, state in self._state.items():
            state.accepted = tuple(sorted(accepted[name]))
            state.refused = tuple(sorted(refused[name]))
        config = Config(apps=tuple(apps) + checked.apps, projects=tuple(projects))
        return config, problems

    def status(self) -> list[dict[str, Any]]:
        """Each parent as ``/api/status`` shows it: commit, children, errors."""
        return [
            {
                "app": name,
                "repo": configured.repo_id_or_none(state.app.source.repo_url),
                "commit": state.commit,
                "children": len(state.accepted),
                "names": list(state.accepted),
                "refused": list(state.refused),
                "error": state.error,
                "errors": list(state.children.errors),
                "on_leave": "a child that leaves is forgotten; its objects stay in the clusters",
            }
            for name, state in sorted(self._state.items())
        ]
