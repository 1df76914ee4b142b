"""``IMAGE=NEW_REF``: kustomize's image overrides, parsed and merged without the kustomize binary.

The model is the ``images:`` entry of a kustomization: ``name`` (the image as written in the
manifests) and three overrides, ``newName``, ``newTag`` and ``digest``. A change follows
``kustomize edit set image`` to the letter:

- ``app=registry/app:1.2`` sets newName and newTag; ``app=registry/app@sha256:...`` newName and
  digest; ``app=registry/app`` newName alone; ``app:1.2`` newTag alone; ``app@sha256:...`` digest
  alone (``registry/app:1.2@sha256:...`` sets both tag and digest, which renders the same).
- A change *replaces* the entry's overrides: a field the argument does not give is removed, so
  ``app:1.2`` drops an earlier newName, as kustomize does. ``*`` in a field keeps its old value
  (``app=*:1.2`` changes the tag and keeps the name).

Everything here is pure: :func:`parse` reads an argument, :func:`merged` computes an entry's new
fields, :func:`rendered` says what image string kustomize then writes into a container.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fleet.errors import ConfigError

__all__ = ["FIELDS", "KEEP", "ImageChange", "merged", "parse", "rendered"]

KEEP = "*"
FIELDS = ("newName", "newTag", "digest")
_TAG = re.compile(r"^(?P<name>.*):(?P<tag>[A-Za-z0-9._-]*|\*)$")
_FORMS = "use IMAGE=NEW_NAME:TAG, IMAGE=NEW_NAME@DIGEST, IMAGE=NEW_NAME, IMAGE:TAG or IMAGE@DIGEST"


@dataclass(frozen=True)
class ImageChange:
    """One parsed ``IMAGE=NEW_REF``: the image's name and the overrides it sets ("" = none)."""

    name: str
    new_name: str = ""
    new_tag: str = ""
    digest: str = ""

    def fields(self) -> dict[str, str]:
        """The overrides by their kustomization keys, empty ones included."""
        return {"newName": self.new_name, "newTag": self.new_tag, "digest": self.digest}


def _split_ref(ref: str, *, bare_allowed: bool, arg: str) -> tuple[str, str, str]:
    """(name, tag, digest) of ``NAME[:TAG][@DIGEST]``."""
    tag = digest = ""
    if "@" in ref:
        ref, _, digest = ref.partition("@")
        if not digest:
            raise ConfigError(f"image {arg!r}: empty digest after '@'; {_FORMS}")
        match = _TAG.match(ref)
        if match:  # NAME:TAG@DIGEST keeps both, rendered as kustomize renders them
            ref, tag = match["name"], match["tag"]
        return ref, tag, digest
    match = _TAG.match(ref)
    if match:
        return match["name"], match["tag"], ""
    if not bare_allowed:
        raise ConfigError(f"image {arg!r}: no tag or digest to set; {_FORMS}")
    return ref, "", ""


def parse(arg: str) -> ImageChange:
    """Parse one ``IMAGE=NEW_REF`` argument; a malformed one is a :class:`ConfigError`."""
    text = arg.strip()
    if not text or any(c.isspace() for c in text) or text.count("=") > 1:
        raise ConfigError(f"image {arg!r}: invalid; {_FORMS}")
    if "=" in text:
        name, _, ref = text.partition("=")
        if not name or not ref:
            raise ConfigError(f"image {arg!r}: empty image or reference around '='; {_FORMS}")
        new_name, tag, digest = _split_ref(ref, bare_allowed=True, arg=arg)
        if not new_name:
            raise ConfigError(f"image {arg!r}: empty new name; {_FORMS}")
        return ImageChange(name=name, new_name=new_name, new_tag=tag, digest=digest)
    name, tag, digest = _split_ref(text, bare_allowed=False, arg=arg)
    if not name:
        raise ConfigError(f"image {arg!r}: empty image name; {_FORMS}")
    return ImageChange(name=name, new_tag=tag, digest=digest)


def merged(change: ImageChange, old: Mapping[str, object]) -> dict[str, str]:
    """The overrides an entry holds after `change`; `old` is its current mapping (or empty).

    Only non-empty fields are returned, in kustomization key order; ``*`` keeps the old value.
    """
    out: dict[str, str] = {}
    for key, given in change.fields().items():
        value = given
        if given == KEEP:
            previous = old.get(key)
            value = "" if previous is None else str(previous)
        if value:
            out[key] = value
    return out


def rendered(image: str, overrides: Mapping[str, str]) -> str:
    """The image string kustomize writes for a container `image` matched by an entry.

    Used by tests and dry runs to say what a change will deploy: the name is replaced by newName,
    the tag by newTag, and a digest replaces the tag unless newTag is also set.
    """
    name, tag, digest = image, "", ""
    if "@" in name:
        name, _, digest = name.partition("@")
    match = _TAG.match(name)
    if match and "/" not in match["tag"]:
        name, tag = match["name"], match["tag"]
    name = overrides.get("newName") or name
    if overrides.get("newTag"):
        tag = overrides["newTag"]
        digest = overrides.get("digest", "")
    elif overrides.get("digest"):
        tag, digest = "", overrides["digest"]
    out = name + (f":{tag}" if tag else "")
    return out + (f"@{digest}" if digest else "")
