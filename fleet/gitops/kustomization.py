"""Editing a kustomization's ``images:`` in place, leaving every other byte of the file alone.

The file (``kustomization.yaml``, ``kustomization.yml`` or ``Kustomization``, exactly one per
directory, as kustomize demands) is read with ruamel.yaml's round-trip loader, the entries are
changed as :mod:`fleet.gitops.images` says, and only the lines of the ``images:`` block are
replaced: they are re-emitted in the block's own indentation (detected from its first entry), with
comments and the quoting of each value kept. The rest of the text is copied as it was, so
comments, key order and the indentation of other blocks cannot change, whatever style they use.

The result is checked before it is written: reloaded, it must equal the original everywhere but
``images:``, and ``images:`` must hold what was asked; the write is atomic (temp file, rename).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from fleet.errors import ConfigError, StalledError
from fleet.gitops import images
from fleet.gitops.images import ImageChange

__all__ = ["FILE_NAMES", "ImageEdit", "find", "set_images"]

log = logging.getLogger(__name__)

FILE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_MAX_BYTES = 1 * 2**20


@dataclass(frozen=True)
class ImageEdit:
    """What one change did to the file: the entry's overrides before and after."""

    change: ImageChange
    before: dict[str, str]
    after: dict[str, str]
    added: bool = False

    @property
    def changed(self) -> bool:
        return self.added or self.before != self.after

    @property
    def ref(self) -> str:
        """The reference the image now renders as (``*`` resolved), e.g. ``registry/app:1.2``."""
        return images.rendered(self.change.name, self.after)


def find(directory: Path) -> Path:
    """The kustomization file of `directory`; none or several is a :class:`ConfigError`."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such directory")
    names = {p.name for p in directory.iterdir()}
    found = [directory / name for name in FILE_NAMES if name in names]
    if not found:
        raise ConfigError(f"{directory}: no kustomization file ({', '.join(FILE_NAMES)})")
    if len(found) > 1:
        listed = ", ".join(p.name for p in found)
        raise ConfigError(f"{directory}: several kustomization files ({listed}); keep one")
    return found[0]


def _yaml(*, sequence: int = 2, offset: int = 0) -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    yaml.indent(mapping=2, sequence=sequence, offset=offset)
    return yaml


def _load(path: Path, text: str) -> CommentedMap:
    try:
        data = _yaml().load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, CommentedMap):
        raise ConfigError(f"{path}: expected a mapping at the top of the kustomization")
    return data


def _styled(old: object, new: str) -> str:
    """`new` in the quoting style of `old`."""
    if isinstance(old, DoubleQuotedScalarString):
        return cast(str, DoubleQuotedScalarString(new))
    if isinstance(old, SingleQuotedScalarString):
        return cast(str, SingleQuotedScalarString(new))
    return new


def _apply(entries: CommentedSeq, change: ImageChange, *, path: Path, add: bool) -> ImageEdit:
    matches = [e for e in entries if isinstance(e, CommentedMap) and e.get("name") == change.name]
    if not matches:
        if not add:
            known = ", ".join(str(e.get("name")) for e in entries if isinstance(e, CommentedMap))
            raise ConfigError(
                f"{path}: image {change.name!r} is not in images: (has: {known or 'none'}); "
                "check the name or pass --add to add it"
            )
        entry = CommentedMap(name=change.name)
        entry.update(images.merged(change, {}))
        entries.append(entry)
        return ImageEdit(change=change, before={}, after=images.merged(change, {}), added=True)
    first = matches[0]
    before = {k: str(first[k]) for k in images.FIELDS if first.get(k) not in (None, "")}
    after = images.merged(change, first)
    for entry in matches:
        for key in images.FIELDS:
            if key in after:
                if entry.get(key) is None or str(entry[key]) != after[key]:
                    entry[key] = _styled(entry.get(key), after[key])
            elif key in entry:
                del entry[key]
    return ImageEdit(change=change, before=before, after=after)


def _block_style(text: str, data: CommentedMap) -> tuple[int, int]:
    """(sequence, offset) indentation of the ``images:`` block, from its first entry."""
    lines = text.splitlines()
    seq = data.get("images")
    if isinstance(seq, CommentedSeq) and len(seq) and isinstance(seq[0], CommentedMap):
        line, _ = seq.lc.item(0)
        dash = lines[line].find("-") if line < len(lines) else -1
        key_line, key_col = seq[0].lc.key(next(iter(seq[0])))
        if dash >= 0 and key_line == line and key_col > dash:
            return key_col, dash
    return 2, 0


def _dump(data: CommentedMap, *, sequence: int, offset: int) -> str:
    out = io.StringIO()
    _yaml(sequence=sequence, offset=offset).dump(data, out)
    return out.getvalue()


def _block_span(data: CommentedMap, key: str, total: int) -> tuple[int, int]:
    """The lines [start, end) of top-level `key`'s block: up to the next top-level key."""
    keys = list(data)
    start = data.lc.key(key)[0]
    index = keys.index(key)
    end = data.lc.key(keys[index + 1])[0] if index + 1 < len(keys) else total
    return start, end


def _splice(original: str, data: CommentedMap, *, sequence: int, offset: int) -> str:
    """`original` with its ``images:`` block replaced by the one in `data`."""
    dumped = _dump(data, sequence=sequence, offset=offset)
    new_lines = dumped.splitlines(keepends=True)
    old_lines = original.splitlines(keepends=True)
    reloaded = _yaml().load(dumped)
    new_start, new_end = _block_span(reloaded, "images", len(new_lines))
    block = new_lines[new_start:new_end]
    old_data = _yaml().load(original)
    if "images" in old_data:
        old_start, old_end = _block_span(old_data, "images", len(old_lines))
        return "".join(old_lines[:old_start] + block + old_lines[old_end:])
    head = "".join(old_lines)
    if head and not head.endswith("\n"):
        head += "\n"
    return head + "".join(block)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _check(path: Path, original: str, result: str, wanted: CommentedMap) -> None:
    """The edit changed ``images:`` only, and to what was asked; else a bug of ours."""
    before, after = _plain(_load(path, original)), _plain(_load(path, result))
    before.pop("images", None)
    images_after = after.pop("images", None)
    if before != after or images_after != _plain(wanted.get("images")):
        raise StalledError(f"{path}: editing images: would change other content; file left as is")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.fleet-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, path.stat().st_mode & 0o777)
    tmp.replace(path)


def set_images(
    directory: Path, changes: Sequence[ImageChange], *, add: bool = False
) -> tuple[Path, list[ImageEdit]]:
    """Apply `changes` to the kustomization of `directory`; the file and what changed.

    The file is written only when some entry changed. An image the file lacks is a
    :class:`ConfigError` naming the file, unless `add`.
    """
    path = find(directory)
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ConfigError(f"{path}: larger than {_MAX_BYTES} bytes")
        original = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    data = _load(path, original)
    sequence, offset = _block_style(original, data)
    entries = data.get("images")
    if entries is None:
        entries = CommentedSeq()
        data["images"] = entries
    if not isinstance(entries, CommentedSeq):
        raise ConfigError(f"{path}: images: must be a list")
    edits = [_apply(entries, change, path=path, add=add) for change in changes]
    if not any(edit.changed for edit in edits):
        return path, edits
    result = _splice(original, data, sequence=sequence, offset=offset)
    _check(path, original, result, data)
    _write(path, result)
    for edit in edits:
        log.info(
            "event=image_set file=%s image=%s ref=%s changed=%s",
            path,
            edit.change.name,
            edit.ref,
            edit.changed,
        )
    return path, edits
