"""A commit of a mirror, read without a checkout: object ids, files, listings, and extraction.

:class:`Snapshot` answers what rendering asks before it renders: the git object id of each path
(the cache key's input: a commit that leaves a path alone leaves its id alone), whether a path is a
tree or a file, a file's bytes, a directory's names. Ids, kinds and names come from the commit's
whole tree, listed once per commit by the mirror (:meth:`Mirror.tree`); without it (a tree too
large to keep) many paths go to one ``git cat-file --batch-check``.

:meth:`Snapshot.plain_files` reads the same paths into memory instead, for a renderer that takes
its files in a request (krender), as long as none is a symlink.

:meth:`Snapshot.extract` writes just the named paths of the commit into a fresh directory, from
the commit's tree listing and the mirror's blobs (those a commit left alone are kept in memory,
the others come in one ``git cat-file --batch``), or else with ``git archive COMMIT -- PATHS``
unpacked in Python; either way it refuses what could escape the directory: absolute or ``..``
member names, hard links, devices, and a symlink whose target leaves the repository. The
mirror itself is never a working directory for anything but git.

Those checks read one member at a time, so they judge a link by its text: ``esc ->
up/../../etc`` looks harmless until ``up`` is a link too. What a link resolves to is known only
once the whole tree is laid out; that check is the renderer's (:mod:`fleet.render.confine`, run
on every checkout before any renderer reads it), because every layout of a tree, not only this
one, must pass it. The per-member checks stay as the first, cheap line.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio

from fleet.errors import StalledError
from fleet.sources import gitcmd
from fleet.sources.mirror import Mirror, Tree

__all__ = ["Snapshot", "repo_path"]

ObjectKind = Literal["tree", "blob"]


def repo_path(path: str, *, where: str = "") -> str:
    """`path` normalised relative to the repository root (``""`` is the root); refuses escapes."""
    raw = path.strip()
    norm = posixpath.normpath(raw or ".")
    if raw.startswith("/") or norm == ".." or norm.startswith("../"):
        raise StalledError(f"{where}path {path!r} escapes the repository")
    return "" if norm == "." else norm


@dataclass(frozen=True)
class Snapshot:
    """Commit `commit` of `mirror`."""

    mirror: Mirror
    commit: str
    max_archive_bytes: int = 512 * 1024 * 1024

    @property
    def where(self) -> str:
        """``repo URL commit SHORT`` for messages."""
        return f"repo {self.mirror.repo} commit {self.commit[:12]}"

    async def object_ids(self, paths: Iterable[str]) -> dict[str, str | None]:
        """The object id of each path (``None`` where the commit has no such path)."""
        return {path: oid for path, (oid, _) in (await self._batch(paths)).items()}

    async def kind(self, path: str) -> ObjectKind | None:
        """``"tree"``, ``"blob"`` or ``None`` for a missing path."""
        return (await self._batch([path]))[path][1]

    async def kinds(self, paths: list[str]) -> dict[str, ObjectKind | None]:
        """:meth:`kind` of every path, with one git call."""
        if not paths:
            return {}
        return {path: kind for path, (_, kind) in (await self._batch(paths)).items()}

    async def read(self, path: str) -> bytes:
        """The bytes of file `path`."""
        tree = await self.mirror.tree(self.commit)
        if tree is not None:
            oid, kind = tree.entries.get(path, (None, None))
            if oid is None or kind != "blob":
                raise StalledError(f"{self.where}: no file {path!r}")
            return await self.mirror.blob(oid)
        try:
            return await self.mirror.local_git("cat-file", "blob", f"{self.commit}:{path}")
        except gitcmd.GitFailed:
            raise StalledError(f"{self.where}: no file {path!r}") from None

    async def names(self, path: str) -> list[str]:
        """The entry names of directory `path`."""
        tree = await self.mirror.tree(self.commit)
        if tree is not None:
            if path not in tree.names:
                raise StalledError(f"{self.where}: no directory {path!r}")
            return list(tree.names[path])
        spec = f"{self.commit}:{path}" if path else f"{self.commit}^{{tree}}"
        try:
            out = await self.mirror.local_git("ls-tree", "-z", "--name-only", spec)
        except gitcmd.GitFailed:
            raise StalledError(f"{self.where}: no directory {path!r}") from None
        return [name for name in out.decode().split("\0") if name]

    async def extract(self, paths: Iterable[str], dest: Path) -> None:
        """Write `paths` of the commit under `dest`, at their repository-relative places."""
        wanted = sorted({p for p in paths})
        tree = await self.mirror.tree(self.commit)
        if tree is not None and "" not in wanted:
            await self._extract_blobs(tree, wanted, dest)
            return
        args = ["archive", "--format=tar", self.commit]
        if "" not in wanted:
            args += ["--", *wanted]
        try:
            data = await self.mirror.local_git(*args)
        except gitcmd.GitFailed as exc:
            raise StalledError(f"{self.where}: cannot read {_paths(wanted)}: {exc}") from None
        if len(data) > self.max_archive_bytes:
            raise StalledError(
                f"{self.where}: paths {_paths(wanted)} exceed {self.max_archive_bytes} bytes"
            )
        await anyio.to_thread.run_sync(_unpack, data, dest, self.where)

    async def plain_files(self, paths: Iterable[str]) -> dict[str, bytes] | None:
        """The files under `paths` of the commit (repository path -> bytes), read into memory
        with the checks :meth:`extract` makes; None when one of them is a symlink (which only
        a checkout on disk resolves, and :mod:`fleet.render.confine` checks), when the root is
        asked (the whole repository: :meth:`extract` archives it) or the commit's tree is too
        large to be listed in memory."""
        wanted = sorted(set(paths))
        tree = await self.mirror.tree(self.commit)
        if tree is None or "" in wanted:
            return None
        contents = await self._contents(tree, wanted)
        if any(mode == "120000" for _, mode in contents.values()):
            return None
        return {path: data for path, (data, _) in contents.items()}

    async def _extract_blobs(self, tree: Tree, wanted: list[str], dest: Path) -> None:
        """:meth:`extract` from the commit's tree listing and the mirror's blobs."""
        contents = await self._contents(tree, wanted)
        await anyio.to_thread.run_sync(_write_files, contents, dest)

    async def _contents(self, tree: Tree, wanted: list[str]) -> dict[str, tuple[bytes, str]]:
        """Every blob under `wanted` (path -> (bytes, git mode)) from the commit's tree listing
        and the mirror's blobs (kept ones from memory, the others in one git call), checked as
        archive members are; bounded by ``max_archive_bytes``."""
        files: dict[str, str] = {}  # path -> blob id
        for top in wanted:
            entry = tree.entries.get(top)
            if entry is None:
                raise StalledError(f"{self.where}: cannot read {_paths(wanted)}: no path {top!r}")
            files.update(_blobs_under(tree, top))
        try:
            data = await self.mirror.blobs(list(files.values()))
        except gitcmd.GitFailed as exc:
            raise StalledError(f"{self.where}: cannot read {_paths(wanted)}: {exc}") from None
        if sum(len(data[oid]) for oid in files.values()) > self.max_archive_bytes:
            raise StalledError(
                f"{self.where}: paths {_paths(wanted)} exceed {self.max_archive_bytes} bytes"
            )
        contents = {
            path: (data[oid], tree.modes.get(path, "100644")) for path, oid in files.items()
        }
        for path, (blob, mode) in contents.items():
            _check_member(_member(path, blob, mode), self.where)
        return contents

    async def _batch(self, paths: Iterable[str]) -> dict[str, tuple[str | None, ObjectKind | None]]:
        ordered = list(dict.fromkeys(paths))
        tree = await self.mirror.tree(self.commit)
        if tree is not None and "" not in ordered:  # the root's own id is not in the listing
            missing: tuple[str | None, ObjectKind | None] = (None, None)
            return {path: tree.entries.get(path, missing) for path in ordered}
        specs = [f"{self.commit}:{p}" if p else f"{self.commit}^{{tree}}" for p in ordered]
        out = await self.mirror.local_git(
            "cat-file", "--batch-check", stdin="".join(s + "\n" for s in specs).encode()
        )
        result: dict[str, tuple[str | None, ObjectKind | None]] = {}
        for path, line in zip(ordered, out.decode().splitlines(), strict=True):
            fields = line.split()
            if len(fields) == 3 and fields[1] in {"tree", "blob"}:
                kind: ObjectKind = "tree" if fields[1] == "tree" else "blob"
                result[path] = (fields[0], kind)
            else:
                result[path] = (None, None)
        return result


def _unpack(data: bytes, dest: Path, where: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = archive.getmembers()
        for member in members:
            _check_member(member, where)
        archive.extractall(dest, members=members, filter="tar")


def _blobs_under(tree: Tree, top: str) -> dict[str, str]:
    """The blobs (path -> id) of `top` and below, walking its directories (not the whole tree:
    a thousand tenants' renders each read their own few files)."""
    oid, kind = tree.entries[top]
    if kind == "blob":
        return {top: oid}
    found: dict[str, str] = {}
    pending = [top]
    while pending:
        directory = pending.pop()
        for name in tree.names.get(directory, ()):
            path = f"{directory}/{name}"
            child, child_kind = tree.entries[path]
            if child_kind == "blob":
                found[path] = child
            else:
                pending.append(path)
    return found


def _member(path: str, data: bytes, mode: str) -> tarfile.TarInfo:
    """Blob `path` as the archive member it would be, for :func:`_check_member`."""
    member = tarfile.TarInfo(path)
    if mode == "120000":
        member.type, member.linkname = tarfile.SYMTYPE, data.decode(errors="surrogateescape")
    return member


def _write_files(contents: dict[str, tuple[bytes, str]], dest: Path) -> None:
    """Lay out blobs (path -> (bytes, git mode)) under `dest` (checked by :meth:`Snapshot.
    _contents`: names that stay inside, links whose text stays inside)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path, (data, mode) in sorted(contents.items()):
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            target.symlink_to(data.decode(errors="surrogateescape"))
            continue
        target.write_bytes(data)
        if mode == "100755":
            target.chmod(0o755)


def _check_member(member: tarfile.TarInfo, where: str) -> None:
    name = member.name
    if member.type == tarfile.XGLTYPE or name == "pax_global_header":
        return
    if name.startswith("/") or ".." in name.split("/"):
        raise StalledError(f"{where}: path {name!r} escapes the repository")
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise StalledError(
                f"{where}: path {name!r} is a symlink to {member.linkname!r}, "
                "which escapes the repository"
            )
    elif not (member.isfile() or member.isdir()):
        raise StalledError(f"{where}: path {name!r} is neither a file nor a directory")


def _paths(wanted: list[str]) -> str:
    """The paths read, for a message: ``app, base`` (the root as ``.``), never a list repr."""
    return ", ".join(p or "." for p in wanted)
