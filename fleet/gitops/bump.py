"""``fleet image set``: the last step of a CI pipeline, as one function.

Edit the kustomization under ``path`` of the config repo (:mod:`fleet.gitops.kustomization`),
then optionally commit and push it (:mod:`fleet.gitops.publish`). The commit message names every
image, its new reference, the path and the commit of the application repository that produced the
image (``source_commit``, or ``$CI_COMMIT_SHA`` / ``$GITHUB_SHA`` in CI), so ``git log`` of the
config repo answers "which build is deployed where". Re-running the same bump is a no-op: nothing is
committed when the file already says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fleet.errors import ConfigError
from fleet.gitops import kustomization
from fleet.gitops.git import Auth
from fleet.gitops.images import ImageChange
from fleet.gitops.kustomization import ImageEdit
from fleet.gitops.publish import Published, PushPolicy, publish
from fleet.gitops.workspace import open_workspace

__all__ = ["ImageSetResult", "commit_message", "repo_relative", "set_image", "source_commit"]

_CI_SHA_VARIABLES = ("CI_COMMIT_SHA", "GITHUB_SHA")


@dataclass(frozen=True)
class ImageSetResult:
    """The file edited (relative to the repository given), what changed in it, and what was
    committed or pushed (if anything)."""

    file: Path
    edits: tuple[ImageEdit, ...]
    published: Published | None = None

    @property
    def changed(self) -> bool:
        return any(edit.changed for edit in self.edits)


def source_commit(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The application commit behind the image: `explicit`, else CI's own variables, else ""."""
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    return next((env[name] for name in _CI_SHA_VARIABLES if env.get(name)), "")


def repo_relative(path: str) -> str:
    """`path` checked to stay inside the repository, in POSIX form."""
    pure = PurePosixPath(path.strip() or ".")
    if pure.is_absolute() or ".." in pure.parts:
        raise ConfigError(f"--path {path!r}: must be relative and stay inside the repository")
    return str(pure)


def commit_message(
    edits: Sequence[ImageEdit], *, path: str, source: str, subject: str | None = None
) -> str:
    """Subject naming the image(s) and new ref(s); trailers with the path and source commit."""
    changed = [edit for edit in edits if edit.changed]
    if subject is None:
        if len(changed) == 1:
            edit = changed[0]
            subject = f"fleet: set image {edit.change.name} to {edit.ref} in {path}"
        else:
            subject = f"fleet: set {len(changed)} images in {path}"
    lines = [subject, ""]
    lines += [f"- {edit.change.name}: {edit.ref}" for edit in changed]
    lines += ["", f"Fleet-Path: {path}"]
    if source:
        lines.append(f"Source-Commit: {source}")
    return "\n".join(lines) + "\n"


def _local_dir(repo: str) -> Path | None:
    directory = Path(repo).expanduser()
    return directory if directory.is_dir() else None


async def set_image(
    *,
    repo: str,
    path: str,
    changes: Sequence[ImageChange],
    add: bool = False,
    commit: bool = False,
    push: bool = False,
    branch: str | None = None,
    target: str | None = None,
    source: str = "",
    subject: str | None = None,
    auth: Auth | None = None,
    policy: PushPolicy | None = None,
) -> ImageSetResult:
    """Set `changes` in the kustomization at `path` of `repo` (a directory or a URL).

    Without `commit` or `push` only the file of a local `repo` is edited. With `push` the commit
    goes to `target` (default: the checked-out or default branch), or to `branch` for a merge
    request; a rejected push is retried on the new upstream (see :func:`publish`).
    """
    if not changes:
        raise ConfigError("image set: no IMAGE=NEW_REF given")
    rel = repo_relative(path)
    if not commit and not push and branch is None:
        local = _local_dir(repo)
        if local is None:
            raise ConfigError(f"--repo {repo!r}: a remote repository needs --push (or --commit)")
        file, edits = kustomization.set_images(local / rel, changes, add=add)
        return ImageSetResult(file=file.relative_to(local), edits=tuple(edits))
    async with open_workspace(repo, target=target, auth=auth) as ws:
        await ws.require_clean()
        found: list[tuple[Path, list[ImageEdit]]] = []

        async def change() -> str | None:
            file, edits = kustomization.set_images(ws.root / rel, changes, add=add)
            found[:] = [(file, edits)]
            if not any(edit.changed for edit in edits):
                return None
            await ws.git.run("add", "--", str(file.relative_to(ws.root)))
            return commit_message(edits, path=rel, source=source, subject=subject)

        published = await publish(
            ws, change, push=push or branch is not None, branch=branch, policy=policy
        )
        file, edits = found[0]
        return ImageSetResult(
            file=file.relative_to(ws.root), edits=tuple(edits), published=published
        )
