"""Argo CD's kustomize fields, written into the app's kustomization before the build.

Argo CD applies ``spec.source.kustomize`` by running ``kustomize edit`` in the app's directory and
then ``kustomize build``. :func:`edit` makes the same edits as a pure change of the parsed
kustomization (:func:`edited` as text, for a render from files in memory), and :func:`write` puts
the result in place of the file in the render's checkout
(a private copy made for this render, never the mirror; a kustomization that is a link is
replaced by a regular file, so the file it points at stays as committed). What each field writes:

- ``namePrefix``, ``nameSuffix``, ``namespace``: set (``edit set nameprefix|namesuffix|namespace``).
- ``images``: ``edit set image``: ``name=new:tag``, ``name=new@digest``, ``name=new``,
  ``name:tag``, ``name@digest``; an entry of the same ``name`` is updated (a new tag drops the
  digest and the reverse), others are added.
- ``replicas``: ``edit set replicas``: the entry of the same name updated, else added.
- ``commonLabels`` / ``commonAnnotations``: ``edit add label|annotation``: a key the kustomization
  already sets is an error unless ``forceCommonLabels`` / ``forceCommonAnnotations``; with
  ``labelWithoutSelector`` the labels go to a ``labels`` entry that leaves selectors alone (and
  with ``labelIncludeTemplates`` reaches pod templates), as ``--without-selector`` writes them.
- ``patches``: appended to ``patches`` as written; ``components``: added once each (the plan
  drops those missing at the commit when ``ignoreMissingComponents``).

Paths a patch or a component names are read by the plan (:func:`references`), so they are in
the checkout and in the cache key, and checked like every reference of the kustomization.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import StalledError
from fleet.render.documents import DocumentLimits, load_yaml
from fleet.render.spec import KustomizeOptions

__all__ = ["edit", "edited", "parse_image", "references", "write"]

_TAG = re.compile(r"^(.*):([a-zA-Z0-9._-]*|\*)$")
_FIELD = "spec.source.kustomize"


def references(options: KustomizeOptions) -> list[str]:
    """The paths `options` add to the kustomization (components, patch files), as written."""
    refs = list(options.components)
    for index, patch in enumerate(options.patches):
        _check_patch(patch, index)
        if isinstance(patch.get("path"), str):
            refs.append(patch["path"])
    return refs


def parse_image(arg: str) -> dict[str, str]:
    """One ``kustomize edit set image`` argument as an ``images`` entry."""
    where = f"{_FIELD}.images: {arg!r}"
    left, sep, right = arg.partition("=")
    if sep and "=" in right:
        raise StalledError(f"{where}: more than one '='; write name=newName:tag")
    name, new = (left, right) if sep else ("", arg)
    entry: dict[str, str] = {}
    if "@" in new:
        image, _, digest = new.partition("@")
        entry = {"name": image, "digest": digest}
    elif match := _TAG.match(new):
        entry = {"name": match.group(1), "newTag": match.group(2)}
    elif sep and new:
        entry = {"name": new}
    else:
        raise StalledError(f"{where}: expected name=newName:tag, name:tag or name@digest")
    if sep:
        entry = {
            "name": name,
            "newName": entry["name"],
            **{k: v for k, v in entry.items() if k != "name"},
        }
    if not entry["name"] or entry.get("newName", "x") == "":
        raise StalledError(f"{where}: an image name is empty")
    return entry


def edit(doc: Mapping[str, Any], options: KustomizeOptions, *, file: str) -> dict[str, Any]:
    """`doc` (the kustomization in `file`) with `options` written in, as ``kustomize edit`` does."""
    if options.version:
        raise StalledError(
            f"{_FIELD}.version {options.version!r} is not supported: fleet builds with one "
            "kustomize; remove the field"
        )
    out = dict(doc)
    for key, value in (
        ("namePrefix", options.name_prefix),
        ("nameSuffix", options.name_suffix),
        ("namespace", options.namespace),
    ):
        if value:
            out[key] = value
    if options.images:
        out["images"] = _set_images(_list(out, "images", file), options.images)
    if options.replicas:
        out["replicas"] = _set_replicas(_list(out, "replicas", file), options)
    _add_metadata(out, options, file=file)
    if options.patches:
        references(options)  # checks each patch
        out["patches"] = [*_list(out, "patches", file), *(dict(p) for p in options.patches)]
    if options.components:
        components = list(_list(out, "components", file))
        components += [c for c in dict.fromkeys(options.components) if c not in components]
        out["components"] = components
    return out


def _set_replicas(replicas: list[Any], options: KustomizeOptions) -> list[Any]:
    out = [dict(r) for r in replicas if isinstance(r, Mapping)]
    for replica in options.replicas:
        found = next((r for r in out if r.get("name") == replica.name), None)
        if found is None:
            out.append({"name": replica.name, "count": replica.count})
        else:
            found["count"] = replica.count
    return out


def _add_metadata(out: dict[str, Any], options: KustomizeOptions, *, file: str) -> None:
    """Labels and annotations, as ``kustomize edit add label|annotation`` (see the module)."""
    if options.label_include_templates and not options.label_without_selector:
        raise StalledError(
            f"{_FIELD}.labelIncludeTemplates needs {_FIELD}.labelWithoutSelector (as kustomize "
            "edit add label --include-templates needs --without-selector)"
        )
    if options.common_labels and options.label_without_selector:
        out["labels"] = _add_labels(out, options, file=file)
    elif options.common_labels:
        out["commonLabels"] = _add_pairs(
            out,
            "commonLabels",
            options.common_labels,
            force=options.force_common_labels,
            flag="forceCommonLabels",
            file=file,
        )
    if options.common_annotations:
        out["commonAnnotations"] = _add_pairs(
            out,
            "commonAnnotations",
            options.common_annotations,
            force=options.force_common_annotations,
            flag="forceCommonAnnotations",
            file=file,
        )


def edited(data: bytes, file: str, options: KustomizeOptions, *, limits: DocumentLimits) -> str:
    """The text of kustomization `data` (repository path `file`) with `options` written in."""
    docs = load_yaml(data, source=file, limits=limits)
    doc: Any = docs[0] if docs else {}
    if not isinstance(doc, Mapping):
        raise StalledError(f"path {file!r}: a kustomization must be a mapping")
    return yaml.safe_dump(edit(doc, options, file=file), sort_keys=False)


def write(checkout: Path, file: str, options: KustomizeOptions, *, limits: DocumentLimits) -> None:
    """Edit the kustomization at repository path `file` of `checkout` in place (see the module)."""
    target = checkout / file
    text = edited(target.read_bytes(), file, options, limits=limits)
    if target.is_symlink():
        target.unlink()  # the link's target may be another file of the checkout: leave it be
    target.write_text(text)


def _set_images(images: list[Any], args: tuple[str, ...]) -> list[Any]:
    out = [dict(i) if isinstance(i, Mapping) else i for i in images]
    for arg in args:
        new = parse_image(arg)
        found = next((i for i in out if isinstance(i, dict) and i.get("name") == new["name"]), None)
        if found is None:
            out.append({k: v for k, v in new.items() if v != "*"})
            continue
        if "newName" in new:
            found["newName"] = new["newName"]
        if new.get("newTag", "*") != "*":
            found["newTag"] = new["newTag"]
            found.pop("digest", None)
        if "digest" in new:
            found["digest"] = new["digest"]
            found.pop("newTag", None)
    return out


def _add_pairs(
    doc: Mapping[str, Any],
    key: str,
    values: Mapping[str, str],
    *,
    force: bool,
    flag: str,
    file: str,
) -> dict[str, Any]:
    existing = doc.get(key) or {}
    if not isinstance(existing, Mapping):
        raise StalledError(f"path {file!r}: {key} must be a mapping")
    out = dict(existing)
    for name, value in values.items():
        if name in out and not force:
            raise StalledError(
                f"{_FIELD}.{key}: {name!r} is already set in {file}; set {_FIELD}.{flag} "
                "to overwrite it"
            )
        out[name] = str(value)
    return out


def _add_labels(doc: Mapping[str, Any], options: KustomizeOptions, *, file: str) -> list[Any]:
    """``labels`` with `options`' pairs in the entry of the same selector and template settings."""
    templates = options.label_include_templates
    labels = [dict(e) if isinstance(e, Mapping) else e for e in _list(doc, "labels", file)]
    entry = next(
        (
            e
            for e in labels
            if isinstance(e, dict)
            and not e.get("includeSelectors")
            and bool(e.get("includeTemplates")) == templates
        ),
        None,
    )
    if entry is None:
        entry = {"pairs": {}, "includeSelectors": False}
        if templates:
            entry["includeTemplates"] = True
        labels.append(entry)
    entry["pairs"] = _add_pairs(
        entry,
        "pairs",
        options.common_labels,
        force=options.force_common_labels,
        flag="forceCommonLabels",
        file=file,
    )
    return labels


def _check_patch(patch: Mapping[str, Any], index: int) -> None:
    where = f"{_FIELD}.patches[{index}]"
    if not isinstance(patch, Mapping):
        raise StalledError(f"{where}: expected a mapping with patch or path")
    has_patch = isinstance(patch.get("patch"), str) and bool(patch["patch"])
    has_path = isinstance(patch.get("path"), str) and bool(patch["path"])
    if has_patch == has_path:
        raise StalledError(f"{where}: give exactly one of patch (inline) and path")


def _list(doc: Mapping[str, Any], key: str, file: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise StalledError(f"path {file!r}: {key} must be a list")
    return value
