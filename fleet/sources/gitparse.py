"""Reading git's answers: the listing, a tree, a batch of blobs, and a revision among refs.

Pure functions over the bytes of ``ls-remote --symref``, ``ls-tree -r -t -z`` and ``cat-file
--batch``, used by :class:`fleet.sources.mirror.Mirror`; no git runs here. :class:`Tree` is a
commit's whole tree as the mirror keeps it; a tree over ``_MAX_TREE_ENTRIES`` entries is not
kept (its paths are then asked of git one call at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from fleet.sources import gitcmd

__all__ = ["Tree", "parse_batch", "parse_ls_remote", "parse_tree", "pick"]

_MAX_TREE_ENTRIES = 200_000


@dataclass(frozen=True)
class Tree:
    """A commit's tree: every path's object id and kind, and every directory's entry names."""

    entries: Mapping[str, tuple[str, Literal["tree", "blob"]]]  # path -> (object id, kind)
    names: Mapping[str, list[str]]  # directory path ("" the root) -> entry names
    modes: Mapping[str, str]  # blobs that are no plain file: "100755" executable, "120000" link


def parse_batch(out: bytes, oids: list[str], *, missing_ok: bool = False) -> dict[str, bytes]:
    """``cat-file --batch`` output: each object's header line, its bytes and a newline; an
    object git says is missing raises, or with `missing_ok` is left out of the result."""
    found: dict[str, bytes] = {}
    at = 0
    for oid in oids:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) == 2 and header[1] == b"missing" and missing_ok:
            at = end + 1
            continue
        if len(header) != 3:
            raise gitcmd.GitFailed(f"git cat-file: object {oid} is missing", stderr="missing")
        size = int(header[2])
        found[oid] = out[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
    return found


def parse_tree(out: bytes) -> Tree | None:
    """``ls-tree -r -t -z`` output as a :class:`Tree` (submodules left out: no tree, no blob)."""
    records = out.split(b"\0")
    if len(records) > _MAX_TREE_ENTRIES:
        return None
    entries: dict[str, tuple[str, Literal["tree", "blob"]]] = {}
    names: dict[str, list[str]] = {"": []}
    modes: dict[str, str] = {}
    for record in records:
        head, _, raw = record.partition(b"\t")
        fields = head.split()
        if len(fields) != 3 or fields[1] not in (b"tree", b"blob"):
            continue
        path = raw.decode(errors="surrogateescape")
        kind: Literal["tree", "blob"] = "tree" if fields[1] == b"tree" else "blob"
        entries[path] = (fields[2].decode(), kind)
        if kind == "blob" and fields[0] != b"100644":
            modes[path] = fields[0].decode()
        parent, _, name = path.rpartition("/")
        names.setdefault(parent, []).append(name)
        if kind == "tree":
            names.setdefault(path, [])
    return Tree(entries, names, modes)


def parse_ls_remote(text: str) -> tuple[dict[str, str], str | None]:
    """The refs of ``ls-remote --symref`` (name -> sha, tags peeled), and HEAD's branch."""
    refs: dict[str, str] = {}
    head: str | None = None
    for line in text.splitlines():
        sha, _, name = line.partition("\t")
        if sha.startswith("ref: "):
            if name == "HEAD":
                head = sha.removeprefix("ref: ").strip()
            continue
        if name.endswith("^{}"):
            refs[name[:-3]] = sha  # a peeled tag wins over the tag object
        elif name not in refs:
            refs[name] = sha
    return refs, head


def pick(refs: Mapping[str, str], revision: str) -> str | None:
    """The sha `revision` names in `refs`: HEAD, a full ref name, a branch, then a tag."""
    for name in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
        if name in refs:
            return refs[name]
    return None
