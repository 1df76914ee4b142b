"""Kustomize: what a kustomization reads, checked and listed before anything is built.

:func:`reads` walks a kustomization and every kustomization it references, through a
:class:`TreeReader` (a commit, read straight from git), and returns the repository paths the build
needs: the app's own directory and whatever it reaches outside it (``../base``, a component, a
patch file). Those paths are extracted for the build and their object ids enter the cache key, so
a change to a shared base re-renders the overlays that use it, and nothing else does. Every
reference is checked on the way: it may not leave the repository, name a remote URL, or inflate a
Helm chart (use a Helm source for that).

:class:`Builder` builds: through the batch renderer :mod:`fleet.render.krender` (one long-lived
process, the kustomize API linked in, no process per render) when one is built and no CLI was
named, else with the CLI that :func:`build_command` names: a standalone ``kustomize``, else
``kubectl kustomize``. Both build the same way and give the same objects (a test renders a set of
kustomizations both ways). :meth:`Builder.documents` is what the engine calls: krender's answer
comes as JSON objects, so the YAML decode (most of a render's cost after kustomize itself) is
skipped; the CLI's YAML is decoded as before. A batch renderer that cannot start is dropped for
the CLI, once.
A kustomization's references are parsed once per text (a memo of 8,192 texts of at most
16 KiB, keyed by the file's path and bytes): at a new commit most kustomizations are the blobs
they were, and a thousand tenants' overlays would otherwise each be decoded again to plan their
renders.
The CLI's command names the load restrictor ``LoadRestrictionsRootOnly`` (kustomize's default,
stated so that no default or config can loosen it: a file a kustomization loads lies in or below
its own directory, symlinks resolved) and never enables plugins, exec or container functions, or
Helm inflation, so a build executes nothing from the repository; krender builds with the same
options. Links inside a base that lead out of the checkout
are refused before the build (:mod:`fleet.render.confine`).
"""

from __future__ import annotations

import functools
import json
import logging
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from fleet.errors import StalledError
from fleet.render import krender, tools
from fleet.render.documents import DocumentLimits, load_yaml

__all__ = [
    "KUSTOMIZATION_NAMES",
    "Builder",
    "TreeReader",
    "build_command",
    "kustomization_in",
    "reads",
]

log = logging.getLogger(__name__)

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_PATH_LISTS = (
    "resources",
    "bases",
    "components",
    "crds",
    "configurations",
    "patchesStrategicMerge",
    "transformers",
    "generators",
    "validators",
)
_REMOTE_MARKS = ("://", "github.com/", "gitlab.com/", "bitbucket.org/", "git@", "?ref=")


class TreeReader(Protocol):
    """A commit's files, read without a checkout (see :class:`fleet.sources.Snapshot`)."""

    async def kind(self, path: str) -> Literal["tree", "blob"] | None: ...
    async def kinds(self, paths: list[str]) -> dict[str, Literal["tree", "blob"] | None]: ...
    async def read(self, path: str) -> bytes: ...
    async def names(self, path: str) -> list[str]: ...


async def kustomization_in(reader: TreeReader, directory: str) -> str | None:
    """The kustomization file's repository path in `directory`, if it has one."""
    names = set(await reader.names(directory))
    for name in KUSTOMIZATION_NAMES:
        if name in names:
            return posixpath.join(directory, name) if directory else name
    return None


async def reads(
    reader: TreeReader, path: str, *, limits: DocumentLimits, extra: Sequence[str] = ()
) -> list[str]:
    """Every repository path the build of `path` reads: `path` first, then outside paths sorted.

    `extra` are references the app adds to its kustomization before the build (components and
    patch files of ``spec.source.kustomize``), relative to `path`, checked like its own.
    """
    outside: set[str] = set()
    seen: set[str] = set()
    pending = [path]
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        file = await kustomization_in(reader, directory)
        if file is None:
            continue  # a plain directory of resources
        data = await reader.read(file)
        if len(data) <= _MEMO_BYTES:
            own = list(_references(data, file, limits))
        else:
            own = list(_each_reference(data, file=file, limits=limits))
        if directory == path:
            own += extra
        refs = [(ref, _resolve(directory, ref, file=file)) for ref in own]
        kinds = await reader.kinds([target for _, target in refs])  # one git call per level
        for ref, target in refs:
            kind = kinds[target]
            if kind is None:
                raise StalledError(f"path {file!r}: reference {ref!r} does not exist")
            if not _under(target, path):
                outside.add(target)
            if kind == "tree":
                pending.append(target)
    return [path, *sorted(_roots(outside))]


LOAD_RESTRICTOR = "--load-restrictor=LoadRestrictionsRootOnly"


def build_command(directory: Path, *, binary: Path | None) -> list[str]:
    """The command that builds `directory`: `binary`, or kustomize, or kubectl kustomize."""
    if binary is None:
        found = shutil.which("kustomize") or shutil.which("kubectl")
        if found is None:
            raise StalledError("neither kustomize nor kubectl is on PATH")
        binary = Path(found)
    verb = "kustomize" if binary.name.startswith("kubectl") else "build"
    return [str(binary), verb, str(directory), LOAD_RESTRICTOR]


class Builder:
    """Kustomize builds for one renderer: the batch renderer when found, else the CLI.

    `binary` names a CLI (``kustomize`` or ``kubectl``) to use instead of any batch renderer;
    `batch` a krender binary (default: :func:`fleet.render.krender.locate`, when `binary` is
    None).
    """

    def __init__(
        self,
        *,
        binary: Path | None = None,
        batch: Path | None = None,
        jobs: int = 4,
        max_output: int = 64 * 2**20,
    ) -> None:
        self.binary = binary
        self.max_output = max_output
        found = batch if batch is not None else (krender.locate() if binary is None else None)
        self.batch = (
            krender.BatchKustomize(found, jobs=jobs, max_output=max_output) if found else None
        )

    async def version(self) -> str:
        """The kustomize that builds: ``krender sigs.k8s.io/kustomize/api vX``, or the CLI's."""
        if self.batch is not None:
            try:
                return await self.batch.version()
            except StalledError as exc:
                self._drop_batch(exc)
        with tempfile.TemporaryDirectory(prefix="fleet-tool-") as scratch:
            env = tools.tool_env(Path(scratch))
            build = build_command(Path(scratch), binary=self.binary)
            if build[1] == "kustomize":
                command = [build[0], "version", "--client", "-o", "json"]
            else:
                command = [build[0], "version"]
            out = await tools.run_tool(command, cwd=Path(scratch), env=env, max_output=1 << 20)
        text = out.decode().strip()
        if text.startswith("{"):
            text = "kubectl " + str(json.loads(text).get("kustomizeVersion", "?"))
        return text

    async def build(self, checkout: Path, path: str, *, env: Mapping[str, str]) -> bytes:
        """The YAML of ``kustomize build`` of `path` in `checkout` (the CLI runs with `env`)."""
        if self.batch is not None:
            try:
                return await self.batch.build(checkout / path, root=checkout)
            except StalledError as exc:
                if self.batch.starts:
                    raise  # the kustomization's own error
                self._drop_batch(exc)
        return await self._cli(checkout, path, env=env)

    async def documents(
        self, checkout: Path, path: str, *, env: Mapping[str, str], limits: DocumentLimits
    ) -> list[Any]:
        """The documents of ``kustomize build`` of `path` in `checkout`, decoded: krender's JSON
        answer as it is (no YAML decode), or the CLI's YAML decoded within `limits`."""
        if self.batch is not None:
            try:
                return await self.batch.documents(checkout / path, root=checkout, limits=limits)
            except StalledError as exc:
                if self.batch.starts:
                    raise  # the kustomization's own error
                self._drop_batch(exc)
        out = await self._cli(checkout, path, env=env)
        return load_yaml(out, source=f"kustomize build of {path}", limits=limits)

    async def takes_files(self) -> bool:
        """Whether builds may come from files in memory (:meth:`documents_of_files`): the batch
        renderer is in use and its build takes them."""
        return self.batch is not None and await self.batch.takes_files()

    async def documents_of_files(
        self, files: Mapping[str, str], path: str, *, limits: DocumentLimits
    ) -> list[Any]:
        """The documents of ``kustomize build`` of `path` from `files` (repository path -> text)
        alone; only when :meth:`takes_files`."""
        assert self.batch is not None
        return await self.batch.documents_of_files(files, path, limits=limits)

    async def _cli(self, checkout: Path, path: str, *, env: Mapping[str, str]) -> bytes:
        return await tools.run_tool(
            build_command(checkout / path, binary=self.binary),
            cwd=checkout,
            env=env,
            max_output=self.max_output,
            name="kustomize",
        )

    async def aclose(self) -> None:
        if self.batch is not None:
            await self.batch.aclose()

    def _drop_batch(self, exc: Exception) -> None:
        log.warning("event=krender_unavailable error=%s fallback=cli", exc)
        self.batch = None


_MEMO_BYTES = 16 * 1024  # larger kustomizations are parsed each time: the memo stays small


@functools.lru_cache(maxsize=8192)
def _references(data: bytes, file: str, limits: DocumentLimits) -> tuple[str, ...]:
    """The paths a kustomization's text names (memoised: a refusal raises, and is not kept)."""
    return tuple(_each_reference(data, file=file, limits=limits))


def _each_reference(data: bytes, *, file: str, limits: DocumentLimits) -> Iterator[str]:
    docs = load_yaml(data, source=file, limits=limits)
    doc: Any = docs[0] if docs else {}
    if not isinstance(doc, dict):
        raise StalledError(f"path {file!r}: a kustomization must be a mapping")
    for key in ("helmCharts", "helmChartInflationGenerator", "helmGlobals"):
        if key in doc:
            raise StalledError(f"path {file!r}: {key} is not supported; use a Helm source")
    for key in _PATH_LISTS:
        for entry in _list(doc, key, file):
            if isinstance(entry, str) and "\n" not in entry:
                yield entry
    for key in ("patches", "patchesJson6902", "replacements"):
        for entry in _list(doc, key, file):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                yield entry["path"]
    yield from _generator_files(doc, file)
    openapi = doc.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield openapi["path"]


def _generator_files(doc: dict[str, Any], file: str) -> Iterator[str]:
    for key in ("configMapGenerator", "secretGenerator"):
        for entry in _list(doc, key, file):
            if not isinstance(entry, dict):
                continue
            for item in [*(entry.get("files") or []), *(entry.get("envs") or [])]:
                yield str(item).rpartition("=")[2]
            if isinstance(entry.get("env"), str):
                yield entry["env"]


def _list(doc: dict[str, Any], key: str, file: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise StalledError(f"path {file!r}: {key} must be a list")
    return value


def _resolve(directory: str, ref: str, *, file: str) -> str:
    if any(mark in ref for mark in _REMOTE_MARKS):
        raise StalledError(f"path {file!r}: remote reference {ref!r} is not supported")
    if ref.startswith("/"):
        raise StalledError(f"path {file!r}: reference {ref!r} escapes the repository")
    target = posixpath.normpath(posixpath.join(directory, ref))
    if target == ".." or target.startswith("../"):
        raise StalledError(f"path {file!r}: reference {ref!r} escapes the repository")
    return "" if target == "." else target


def _under(path: str, root: str) -> bool:
    return root in ("", path) or path.startswith(root + "/")


def _roots(paths: set[str]) -> set[str]:
    """`paths` without those inside another of them."""
    return {p for p in paths if not any(p != q and _under(p, q) for q in paths)}
