"""Raw YAML of a Rancher Fleet bundle: its files, its ``yaml.overlays``, its namespaces.

:func:`load` reads a bundle's raw YAML as Rancher Fleet does: every ``.yaml``, ``.yml`` and
``.json`` file under the bundle directory, except its ``fleet.yaml``, the Helm values files it
names, hidden directories, and subdirectories that are bundles or charts of their own (holding a
``fleet.yaml`` or a ``Chart.yaml``). Overlays work by file name, each ``overlays/NAME/`` in the
order the bundle lists them: ``overlays/NAME/a/b.yaml`` adds or replaces ``a/b.yaml``;
``overlays/NAME/a/b_patch.yaml`` patches it (the first ``_patch.`` of the name becomes ``.``).
A patch is a JSON Patch when it is a list, else a strategic merge patch for a built-in Kubernetes
kind and a JSON merge patch for any other (:mod:`fleet.render.patches`), as Rancher Fleet chooses.
A patch whose base file is missing, or holds several documents, is refused naming both files.
The ``overlays/`` directory itself is never read as manifests. A ``.fleetignore`` in any
directory of the bundle leaves out what its patterns match (one glob per line, ``#`` comments;
a pattern without ``/`` matches a name at any depth below that directory, one with ``/`` the path
relative to it; a trailing ``/`` a directory only); a negated pattern (``!``) is refused, since
fleet does not implement re-inclusion.

:func:`place` gives namespaced objects the bundle's namespace after any render (raw, Helm or
kustomize): the forced ``namespace`` on every object, refusing a cluster-scoped one as Rancher
Fleet does, else ``defaultNamespace`` on objects that name none. Kinds known to be cluster-scoped
(built-in ones, and CRDs of the set) are left alone; fleet's apply drops a namespace from any other
cluster-scoped kind it discovers.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

from fleet.errors import StalledError
from fleet.render import patches
from fleet.render.documents import DocumentLimits, load_yaml, objects_of
from fleet.render.spec import RancherBundle
from fleet.types import Manifest, split_api_version

__all__ = ["CLUSTER_SCOPED", "load", "place"]

_SUFFIXES = (".yaml", ".yml", ".json")
_OWN_ROOTS = ("fleet.yaml", "fleet.yml", "Chart.yaml")

CLUSTER_SCOPED = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("networking.k8s.io", "IngressClass"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    }
)


def load(checkout: Path, bundle: RancherBundle, *, limits: DocumentLimits) -> list[Manifest]:
    """The objects of `bundle`'s raw YAML in `checkout`, its overlays applied."""
    root = checkout / bundle.bundle if bundle.bundle else checkout
    skip = {_relative(s, bundle.bundle) for s in bundle.skip}
    skip |= {"fleet.yaml", "fleet.yml"}
    found = _files(root, checkout=checkout.resolve(), limits=limits)
    files = {rel: data for rel, data in found if rel not in skip}
    for overlay in bundle.overlays:
        _overlay(files, overlay, where=_where(bundle))
    objects: list[Manifest] = []
    for rel in sorted(files):
        if rel.startswith("overlays/"):
            continue
        source = f"{bundle.bundle}/{rel}" if bundle.bundle else rel
        data = files[rel]
        if rel.endswith(".json"):
            try:
                docs: list[Any] = [json.loads(data)]
            except ValueError as exc:
                raise StalledError(f"{source}: invalid JSON: {exc}") from None
        else:
            docs = load_yaml(data, source=source, limits=limits)
        objects.extend(objects_of(docs, source=source))
    return objects


def place(objects: list[Manifest], bundle: RancherBundle) -> list[Manifest]:
    """`objects` with the bundle's ``namespace`` or ``defaultNamespace`` (module docstring)."""
    if not bundle.namespace and not bundle.default_namespace:
        return objects
    cluster_scoped = set(CLUSTER_SCOPED) | _cluster_scoped_crds(objects)
    placed: list[Manifest] = []
    for obj in objects:
        group = split_api_version(str(obj.get("apiVersion", "")))[0]
        kind = str(obj.get("kind", ""))
        metadata = obj.get("metadata") or {}
        if (group, kind) in cluster_scoped:
            if bundle.namespace:
                raise StalledError(
                    f"{bundle.file}: namespace {bundle.namespace!r} puts every object in one "
                    f"namespace, but {kind} {metadata.get('name')!r} is cluster-scoped; use "
                    "defaultNamespace instead (Rancher Fleet refuses this too)"
                )
            placed.append(obj)
            continue
        if bundle.namespace or not metadata.get("namespace"):
            namespace = bundle.namespace or bundle.default_namespace
            placed.append({**obj, "metadata": {**metadata, "namespace": namespace}})
        else:
            placed.append(obj)
    return placed


def _cluster_scoped_crds(objects: list[Manifest]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for obj in objects:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}
        if spec.get("scope") == "Cluster":
            found.add((str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", ""))))
    return found


_Ignore = tuple[Path, str]  # (the directory of the .fleetignore, one pattern)


def _ignores(here: Path, *, checkout: Path) -> list[_Ignore]:
    """The patterns of `here`'s ``.fleetignore``, if it has one."""
    file = here / ".fleetignore"
    if not file.is_file():
        return []
    found: list[_Ignore] = []
    for line in file.read_text(errors="replace").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        if pattern.startswith("!"):
            where = file.relative_to(checkout).as_posix()
            raise StalledError(
                f"{where}: {pattern!r}: re-including with '!' is not supported by fleet; "
                "list only what to leave out"
            )
        found.append((here, pattern))
    return found


def _ignored(path: Path, ignores: list[_Ignore], *, directory: bool) -> bool:
    for base, line in ignores:
        if not path.is_relative_to(base) or (line.endswith("/") and not directory):
            continue
        pattern = line.rstrip("/")
        if "/" in pattern:  # anchored at the .fleetignore's directory
            if fnmatch.fnmatchcase(path.relative_to(base).as_posix(), pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(path.name, pattern):
            return True
    return False


def _files(root: Path, *, checkout: Path, limits: DocumentLimits) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    ignores: list[_Ignore] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        ignores = [i for i in ignores if here.is_relative_to(i[0])]
        ignores += _ignores(here, checkout=checkout)
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            if any((here / name / own).is_file() for own in _OWN_ROOTS):
                continue  # a bundle or chart of its own: Rancher Fleet leaves it out too
            if _ignored(here / name, ignores, directory=True):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if not name.endswith(_SUFFIXES) or _ignored(here / name, ignores, directory=False):
                continue
            file = here / name
            rel = file.relative_to(root).as_posix()
            real = file.resolve()
            if not real.is_relative_to(checkout) or not real.is_file():
                raise StalledError(f"path {rel!r} is a link that leaves the repository or dangles")
            size = real.stat().st_size
            if size > limits.max_file_bytes:
                raise StalledError(
                    f"path {rel!r}: file is {size} bytes, over the limit of {limits.max_file_bytes}"
                )
            found.append((rel, real.read_bytes()))
    return found


def _overlay(files: dict[str, bytes], overlay: str, *, where: str) -> None:
    prefix = f"overlays/{overlay}/"
    for name in sorted(n for n in files if n.startswith(prefix)):
        rel = name.removeprefix(prefix)
        base, sep, tail = rel.rpartition("/")
        if "_patch." not in tail:
            files[rel] = files[name]
            continue
        target = f"{base}{sep}{tail.replace('_patch.', '.', 1)}"
        if target not in files:
            raise StalledError(
                f"{where}: overlay file {name!r} patches {target!r}, which the bundle does not have"
            )
        files[target] = _patched(files[target], files[name], target=target, name=name)


def _patched(base: bytes, change: bytes, *, target: str, name: str) -> bytes:
    limits = DocumentLimits()
    base_docs = [d for d in load_yaml(base, source=target, limits=limits) if d is not None]
    patch_docs = [d for d in load_yaml(change, source=name, limits=limits) if d is not None]
    if len(base_docs) != 1 or len(patch_docs) != 1:
        raise StalledError(
            f"overlay file {name!r} patches {target!r}: both must hold exactly one document"
        )
    result = patches.apply(base_docs[0], patch_docs[0], where=f"overlay file {name!r}")
    return json.dumps(result).encode()


def _relative(path: str, bundle: str) -> str:
    return path.removeprefix(bundle + "/") if bundle else path


def _where(bundle: RancherBundle) -> str:
    return f"bundle {bundle.bundle or '.'!r} ({bundle.file})"
