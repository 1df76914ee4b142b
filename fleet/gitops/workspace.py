"""The config repository a CI job or an operator edits: a work tree, its remote, its branch.

``--repo`` names either a directory (an existing clone: CI's checkout, an operator's work tree),
used in place on its current branch, or a URL, cloned into a private temporary directory that is
removed afterwards. Either way the remote is ``origin`` and the branch is the one commits land on
(the *target*); a clone's URL is shown redacted (no ``user:password@``) in every message.

Edits refuse a dirty work tree: a retry after a rejected push resets to the last pushed state, which
must not lose anyone's uncommitted work. Commits get an identity even where CI configured none
(``fleet <fleet@localhost>``, overridden by git config or ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ConfigError, StalledError
from fleet.gitops.git import Auth, Git, askpass_env, redact_url

__all__ = ["Workspace", "open_workspace"]

_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+$")


@dataclass
class Workspace:
    """A work tree of the config repo and the branch its commits are pushed to."""

    git: Git
    root: Path
    target: str  # the branch commits land on
    display: str  # the repository, for messages: a redacted URL or a directory

    @property
    def upstream(self) -> str:
        return f"refs/remotes/origin/{self.target}"

    async def head(self) -> str:
        return await self.git.out("rev-parse", "HEAD")

    async def require_clean(self) -> None:
        """Refuse when tracked files have uncommitted changes or an operation is half done."""
        status = await self.git.out("status", "--porcelain", "--untracked-files=no")
        if status:
            files = ", ".join(line[3:] for line in status.splitlines()[:5])
            raise StalledError(
                f"{self.display}: the working tree is not clean ({files}); commit or stash first"
            )
        git_dir = Path(await self.git.out("rev-parse", "--absolute-git-dir"))
        for marker in ("MERGE_HEAD", "REVERT_HEAD", "CHERRY_PICK_HEAD", "rebase-merge"):
            if (git_dir / marker).exists():
                raise StalledError(
                    f"{self.display}: a git operation is in progress ({marker}); finish or abort it"
                )

    async def commit(self, message: str) -> str:
        """Commit what is staged with `message`; the new sha."""
        identity: list[str] = []
        configured = await self.git.run("config", "user.email", check=False)
        if not configured.out.strip() and "GIT_COMMITTER_EMAIL" not in os.environ:
            identity = ["-c", "user.name=fleet", "-c", "user.email=fleet@localhost"]
        await self.git.run(*identity, "commit", "--quiet", "--no-verify", "-m", message)
        return await self.head()

    async def fetch(self) -> None:
        """Update the upstream ref of the target branch from origin."""
        refspec = f"+refs/heads/{self.target}:{self.upstream}"
        await self.git.run("fetch", "--quiet", "origin", refspec, network=True)


async def _target(git: Git, *, display: str, wanted: str | None) -> str:
    if wanted:
        if not _BRANCH.match(wanted) or wanted.endswith((".lock", "/")):
            raise ConfigError(f"{display}: {wanted!r} is not a valid branch name")
        checked_out = await git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if checked_out.out.strip() != wanted:
            refspec = f"+refs/heads/{wanted}:refs/remotes/origin/{wanted}"
            fetched = await git.run(
                "fetch", "--quiet", "origin", refspec, network=True, check=False
            )
            if fetched.code != 0:
                raise ConfigError(f"{display}: no branch {wanted!r} on origin ({fetched.cause})")
            await git.run("checkout", "--quiet", "-B", wanted, f"origin/{wanted}")
        return wanted
    current = await git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if current.code != 0:
        raise StalledError(f"{display}: HEAD is detached; pass --target-branch BRANCH")
    return current.out.strip()


def _local_dir(repo: str) -> Path | None:
    directory = Path(repo).expanduser()
    return directory if directory.is_dir() else None


@contextlib.asynccontextmanager
async def open_workspace(
    repo: str, *, target: str | None = None, auth: Auth | None = None, git_timeout: float = 120.0
) -> AsyncIterator[Workspace]:
    """The work tree for `repo` (a directory, or a URL cloned for the duration).

    `target` picks the branch (default: the directory's current branch, or the remote's default
    branch for a URL). The credential lives only while the workspace is open.
    """
    with askpass_env(auth) as env:
        directory = _local_dir(repo)
        if directory is not None:
            git = Git(directory, env=env, auth=auth, timeout=git_timeout)
            found = await git.run("rev-parse", "--show-toplevel", check=False)
            if found.code != 0:
                raise ConfigError(f"{directory}: not a git work tree")
            root = Path(found.out.strip())
            git = git.at(root, label=str(root))
            if await git.out("rev-parse", "--is-bare-repository") == "true":
                raise ConfigError(f"{directory}: a bare repository; pass a clone or a URL")
            name = await _target(git, display=str(root), wanted=target)
            yield Workspace(git=git, root=root, target=name, display=str(root))
            return
        if "://" not in repo and not re.match(r"^[\w.-]+@[\w.-]+:", repo):
            raise ConfigError(f"--repo {repo!r}: neither a directory nor a git URL")
        display = redact_url(repo)
        with tempfile.TemporaryDirectory(prefix="fleet-config-") as tmp:
            root = Path(tmp) / "repo"
            git = Git(Path(tmp), env=env, auth=auth, timeout=git_timeout, label=display)
            await git.run("clone", "--quiet", "--no-tags", "--", repo, str(root), network=True)
            git = git.at(root, label=display)
            name = await _target(git, display=display, wanted=target)
            yield Workspace(git=git, root=root, target=name, display=display)
