"""The app the benches deploy, and the edits a CI pipeline makes to it, in a real git remote.

The app is a kustomization of `objects` objects under ``app/``: one Deployment ``web`` (its image
overridden in the kustomization's ``images:``), one ConfigMap ``settings`` (a ``value``), and
Services and ConfigMaps to make up the count. No namespace is written: fleet's destination
namespace fills it in, and the floor and the baseline apply the same objects to namespaces of
their own. Commit ``i`` is a new image tag (even ``i``, through :mod:`fleet.gitops`, as
``fleet image set`` does) or a new ConfigMap value (odd ``i``); either way the commit's *marker*
(``image:v7``, ``value:v8``) is what an independent watcher looks for in the clusters.

For the many-cluster mode, :func:`write_tenants` adds one small overlay per cluster entry under
``tenants/<name>/`` (a Namespace of its own, ``namespace: t-<name>``), so an app whose path is
``tenants/{{ cluster.name }}`` sends each entry to a distinct namespace.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fleet.gitops import images, kustomization
from tests.sources.gitkit import git

__all__ = ["IMAGE", "Marker", "Workload", "marker_of_configmap", "marker_of_deployment"]

IMAGE = "registry.local/web"


@dataclass(frozen=True)
class Marker:
    """What commit `index` changed, as the watcher will see it in a cluster."""

    index: int
    kind: str  # "image" or "value"
    value: str

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.value}"


def marker_of_deployment(obj: dict[str, object]) -> str | None:
    """``image:<tag>`` of the ``web`` container of a Deployment (a plain dict from the API)."""
    try:
        spec = obj["spec"]["template"]["spec"]  # type: ignore[index]
        image = str(spec["containers"][0]["image"])
    except (KeyError, IndexError, TypeError):
        return None
    return f"image:{image.rpartition(':')[2]}"


def marker_of_configmap(obj: dict[str, object]) -> str | None:
    data = obj.get("data")
    if not isinstance(data, dict) or "value" not in data:
        return None
    return f"value:{data['value']}"


def _deployment() -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{app: web}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "{IMAGE}:v0"}}]
"""


def _settings(value: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
        f"data: {{value: '{value}'}}\n"
    )


def _filler(index: int) -> str:
    if index % 2:
        return (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: extra-{index}}}\n"
            f"data: {{index: '{index}', text: '{'x' * 200}'}}\n"
        )
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{index}}}\n"
        f"spec: {{selector: {{app: web}}, ports: [{{port: {8000 + index}, "
        f"targetPort: 8080, name: http}}]}}\n"
    )


class Workload:
    """The app in a work tree that pushes to `bare`; `objects` >= 2."""

    def __init__(self, work: Path, *, objects: int) -> None:
        if objects < 2:
            raise ValueError("the app needs at least 2 objects (web and settings)")
        self.work = work
        self.objects = objects
        self.app = work / "app"
        self.index = 0

    def write_base(self) -> None:
        self.app.mkdir(parents=True, exist_ok=True)
        files = {"deploy.yaml": _deployment(), "settings.yaml": _settings("v0")}
        for index in range(self.objects - 2):
            files[f"extra-{index}.yaml"] = _filler(index)
        for name, text in files.items():
            (self.app / name).write_text(text)
        resources = "".join(f"  - {name}\n" for name in sorted(files))
        (self.app / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n{resources}images:\n  - name: {IMAGE}\n    newTag: v0\n"
        )

    def initial_marker(self) -> Marker:
        return Marker(0, "value", "v0")

    def edit(self) -> Marker:
        """The next CI edit in the work tree (not yet committed)."""
        self.index += 1
        tag = f"v{self.index}"
        if self.index % 2 == 0:
            kustomization.set_images(self.app, [images.parse(f"{IMAGE}:{tag}")])
            return Marker(self.index, "image", tag)
        (self.app / "settings.yaml").write_text(_settings(tag))
        return Marker(self.index, "value", tag)

    def commit(self, message: str) -> str:
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self) -> float:
        """``git push``; the wall-clock time it started (the start of commit-to-converged)."""
        started = time.time()
        git("push", "--quiet", "--force", "origin", "HEAD:refs/heads/main", cwd=self.work)
        return started


def write_tenants(work: Path, names: Iterable[str]) -> None:
    """One overlay per cluster entry: the base's ``settings`` ConfigMap and a Service, in a
    Namespace ``t-<name>`` of its own (kept small: the many-cluster mode measures the hub)."""
    base = work / "tenants" / "_base"
    base.mkdir(parents=True, exist_ok=True)
    (base / "settings.yaml").write_text(_settings("v0"))
    (base / "svc.yaml").write_text(_filler(0))
    (base / "kustomization.yaml").write_text("resources: [settings.yaml, svc.yaml]\n")
    for name in names:
        overlay = work / "tenants" / name
        overlay.mkdir(parents=True, exist_ok=True)
        (overlay / "ns.yaml").write_text(
            f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: t-{name}}}\n"
        )
        (overlay / "kustomization.yaml").write_text(
            f"namespace: t-{name}\nresources: [../_base, ns.yaml]\n"
        )


def set_tenant_value(work: Path, value: str) -> Marker:
    """Change the value every tenant's ``settings`` ConfigMap carries (one commit, all entries)."""
    (work / "tenants" / "_base" / "settings.yaml").write_text(_settings(value))
    return Marker(0, "value", value)
