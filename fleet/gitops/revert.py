"""``fleet rollback``: undo by ``git revert`` in the config repo, so the audit trail stays in git.

Two forms, both ending in one new commit on the target branch, which the hub then applies like any
other commit:

- ``commit``: revert that one commit (a merge only with ``mainline``, as ``git revert -m``).
- ``to``: revert every commit after that revision that touched the app's path, newest first
  (``git revert --no-commit`` of each on the first-parent line, then one commit whose message lists
  them), so the app's files are as they were at the revision while other apps' changes stay.

Refusals say why, before anything changes: a dirty work tree, a revision that is not on the branch,
a merge without ``mainline``, a commit that did not touch the app. A revert that conflicts with
later changes is aborted and the work tree reset to where it was; a rejected push is retried on the
new upstream by :func:`fleet.gitops.publish.publish`, re-running the revert there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fleet.config import App
from fleet.config import loading as config_loading
from fleet.errors import ConfigError, StalledError
from fleet.gitops.bump import repo_relative
from fleet.gitops.git import Auth
from fleet.gitops.publish import Published, PushPolicy, publish
from fleet.gitops.workspace import Workspace, open_workspace

__all__ = ["AppTarget", "RollbackRequest", "app_target", "pathspec", "rollback"]

_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")


@dataclass(frozen=True)
class AppTarget:
    """What a rollback of an app touches: its repository, branch and path (maybe templated)."""

    name: str
    repo: str
    path: str
    branch: str | None = None  # None: the repository's default branch


@dataclass(frozen=True)
class RollbackRequest:
    """Exactly one of `commit` and `to`; `mainline` picks the parent of a merge (1-based)."""

    commit: str | None = None
    to: str | None = None
    mainline: int | None = None


def app_target(config: Path, name: str) -> AppTarget:
    """The repository, branch and path of app `name` declared in `config` (fleet.yaml)."""
    app: App | None = config_loading.load(config).app(name)
    if app is None:
        raise ConfigError(f"{config}: no app named {name!r}")
    revision = app.source.target_revision
    branch = None if revision in ("", "HEAD") else revision
    return AppTarget(name=name, repo=app.source.repo_url, path=app.source.path, branch=branch)


def pathspec(path: str) -> str:
    """A git pathspec for an app path; ``{{ ... }}`` placeholders match any one directory."""
    rel = repo_relative(_PLACEHOLDER.sub("x", path))  # validate the shape
    if rel == ".":
        return ":(top)"
    if not _PLACEHOLDER.search(path):
        return f":(top,literal){rel}"
    escaped = re.sub(r"([*?\[\]\\])", r"\\\1", path.strip().strip("/"))
    return f":(top,glob){_PLACEHOLDER.sub('*', escaped)}/**"


async def _resolve(ws: Workspace, revision: str) -> str:
    found = await ws.git.run(
        "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False
    )
    if found.code != 0:
        raise StalledError(f"{ws.display}: no commit {revision!r} (fetched branch {ws.target})")
    sha = found.out.strip()
    on_branch = await ws.git.run("merge-base", "--is-ancestor", sha, "HEAD", check=False)
    if on_branch.code != 0:
        raise StalledError(f"{ws.display}: commit {sha[:12]} is not on branch {ws.target}")
    return sha


async def _parents(ws: Workspace, sha: str) -> list[str]:
    return (await ws.git.out("rev-list", "--parents", "-n", "1", sha)).split()[1:]


async def _subject(ws: Workspace, sha: str) -> str:
    return await ws.git.out("log", "-1", "--format=%s", sha)


async def _revert_staged(ws: Workspace, sha: str, *, mainline: int | None) -> None:
    parents = await _parents(ws, sha)
    if not parents:
        raise StalledError(f"{ws.display}: {sha[:12]} is the first commit; nothing to revert to")
    args = ["revert", "--no-commit", "--no-edit"]
    if len(parents) > 1:
        if mainline is None:
            raise StalledError(
                f"{ws.display}: {sha[:12]} is a merge of {len(parents)} parents; "
                "pass --mainline N (usually 1, the branch merged into) or revert its commits"
            )
        if not 1 <= mainline <= len(parents):
            raise ConfigError(f"--mainline {mainline}: {sha[:12]} has {len(parents)} parents")
        args += ["-m", str(mainline)]
    result = await ws.git.run(*args, sha, check=False)
    if result.code == 0:
        return
    conflicted = (await ws.git.run("diff", "--name-only", "--diff-filter=U", check=False)).out
    await ws.git.run("revert", "--quit", check=False)
    await ws.git.run("reset", "--quiet", "--hard", "HEAD")
    files = ", ".join(conflicted.split()[:5]) or result.cause
    raise StalledError(
        f"{ws.display}: reverting {sha[:12]} conflicts with later changes ({files}); "
        "aborted, nothing was changed"
    )


async def _touches(ws: Workspace, sha: str, spec: str, *, parent: str) -> bool:
    diff = await ws.git.run("diff", "--quiet", parent, sha, "--", spec, check=False)
    return diff.code == 1


async def _revert_one(ws: Workspace, app: AppTarget, req: RollbackRequest) -> str | None:
    assert req.commit is not None
    sha = await _resolve(ws, req.commit)
    parents = await _parents(ws, sha)
    parent = parents[(req.mainline or 1) - 1] if parents else ""
    if parent and not await _touches(ws, sha, pathspec(app.path), parent=parent):
        raise StalledError(
            f"{ws.display}: commit {sha[:12]} does not touch {app.path} (app {app.name})"
        )
    subject = await _subject(ws, sha)
    await _revert_staged(ws, sha, mainline=req.mainline)
    if (await ws.git.run("diff", "--cached", "--quiet", check=False)).code == 0:
        return None  # already undone
    return (
        f'Revert "{subject}"\n\nThis reverts commit {sha}.\n\n'
        f"Fleet-App: {app.name}\nFleet-Rollback-Commit: {sha}\n"
    )


async def _revert_since(ws: Workspace, app: AppTarget, req: RollbackRequest) -> str | None:
    assert req.to is not None
    base = await _resolve(ws, req.to)
    listed = await ws.git.out(
        "rev-list", "--first-parent", f"{base}..HEAD", "--", pathspec(app.path)
    )
    commits = listed.split()
    if not commits:
        return None
    reverted: list[str] = []
    for sha in commits:  # newest first
        await _revert_staged(ws, sha, mainline=req.mainline)
        reverted.append(f"- {sha[:12]} {await _subject(ws, sha)}")
    if (await ws.git.run("diff", "--cached", "--quiet", check=False)).code == 0:
        return None
    return (
        f"Roll back {app.name} to {base[:12]}\n\n"
        f"Reverts the changes to {app.path} made after {base}, newest first:\n"
        + "\n".join(reverted)
        + f"\n\nFleet-App: {app.name}\nFleet-Rollback-To: {base}\n"
    )


async def rollback(
    app: AppTarget,
    request: RollbackRequest,
    *,
    repo: str | None = None,
    push: bool = True,
    branch: str | None = None,
    auth: Auth | None = None,
    policy: PushPolicy | None = None,
) -> Published:
    """Make (and by default push) the revert commit for `app`; see the module doc.

    `repo` overrides the app's repository (a local clone, say); `branch` pushes to a branch for a
    merge request instead of the app's branch. ``Published.commit`` is None when there was
    nothing to revert.
    """
    if (request.commit is None) == (request.to is None):
        raise ConfigError("rollback: give exactly one of --commit SHA and --to REVISION")
    if request.mainline is not None and request.mainline < 1:
        raise ConfigError(f"--mainline {request.mainline}: must be 1 or more")
    pathspec(app.path)  # a bad path fails before any clone
    async with open_workspace(repo or app.repo, target=app.branch, auth=auth) as ws:
        await ws.require_clean()
        step = _revert_one if request.commit is not None else _revert_since

        async def change() -> str | None:
            message = await step(ws, app, request)
            return message

        return await publish(
            ws, change, push=push or branch is not None, branch=branch, policy=policy
        )
