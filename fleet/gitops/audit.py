"""The audit trail joined: which commit (who, when, what) reached which cluster, and how fast.

The hub's SQLite history (:mod:`fleet.report.history`) records what reached where and when; git
records who changed what. :func:`join` puts the two together for ``fleet history``: each sync
record with its commit's sha, author, dates and subject, and the time from the commit to the end of
the sync (commit-to-applied). It is pure; :func:`read_commits` does the one ``git log`` it needs,
for every distinct revision at once, in any clone or bare mirror of the repository.

This layer sits under ``report``, so records are taken structurally (:class:`SyncLike`): a
``SyncRecord`` fits. A record whose commit git does not know (a mirror that has not fetched it, a
force-pushed branch) keeps its row, with ``commit`` None and the latency from the record's own
``committed_at`` when it has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleet.gitops.git import Git, askpass_env

__all__ = ["CommitInfo", "HistoryEntry", "SyncLike", "history", "join", "read_commits"]

_SEP = "\x1f"
_FORMAT = _SEP.join(["%H", "%an", "%ae", "%at", "%ct", "%s"])


class SyncLike(Protocol):
    """The fields of a sync record that the join reads."""

    @property
    def app(self) -> str: ...
    @property
    def cluster(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def finished_at(self) -> float: ...
    @property
    def result(self) -> str: ...
    @property
    def committed_at(self) -> float | None: ...


@dataclass(frozen=True)
class CommitInfo:
    """One commit as ``git log`` tells it. Times are Unix seconds."""

    sha: str
    author: str
    email: str
    authored_at: float
    committed_at: float
    subject: str


@dataclass(frozen=True)
class HistoryEntry:
    """One sync with its commit; `commit_to_applied` in seconds, None when unknown."""

    app: str
    cluster: str
    revision: str
    result: str
    applied_at: float
    commit: CommitInfo | None
    commit_to_applied: float | None


def _lookup(commits: Mapping[str, CommitInfo], revision: str) -> CommitInfo | None:
    found = commits.get(revision)
    if found is not None or len(revision) >= 40 or len(revision) < 7:
        return found
    matches = [info for sha, info in commits.items() if sha.startswith(revision)]
    return matches[0] if len(matches) == 1 else None


def join(records: Iterable[SyncLike], commits: Mapping[str, CommitInfo]) -> list[HistoryEntry]:
    """Each record with its commit (by full or abbreviated sha), in the records' order.

    Commit-to-applied is the sync's end minus the commit's committer date (when it landed on the
    branch, after any rebase), else minus the record's own ``committed_at``.
    """
    entries = []
    for record in records:
        info = _lookup(commits, record.revision)
        committed = info.committed_at if info is not None else record.committed_at
        entries.append(
            HistoryEntry(
                app=record.app,
                cluster=record.cluster,
                revision=record.revision,
                result=record.result,
                applied_at=record.finished_at,
                commit=info,
                commit_to_applied=None if committed is None else record.finished_at - committed,
            )
        )
    return entries


def parse_log(text: str) -> dict[str, CommitInfo]:
    """Commits from ``git log --format`` output in :data:`_FORMAT`, by full sha."""
    commits = {}
    for line in text.splitlines():
        parts = line.split(_SEP)
        if len(parts) != 6:
            continue
        sha, author, email, authored, committed, subject = parts
        commits[sha] = CommitInfo(
            sha=sha,
            author=author,
            email=email,
            authored_at=float(authored),
            committed_at=float(committed),
            subject=subject,
        )
    return commits


async def read_commits(
    repo_dir: Path, revisions: Iterable[str], *, git_timeout: float = 60.0
) -> dict[str, CommitInfo]:
    """The commits of `revisions` known to the repository at `repo_dir` (clone or bare mirror).

    Unknown revisions are left out, not errors. Only hex shas are looked up: a record's
    revision is a commit, and anything else must not reach git as an option.
    """
    wanted = sorted(
        {r for r in revisions if 7 <= len(r) <= 40 and all(c in "0123456789abcdef" for c in r)}
    )
    if not wanted:
        return {}
    with askpass_env(None) as env:
        git = Git(repo_dir, env=env, timeout=git_timeout)
        result = await git.run(
            "log", "--no-walk=unsorted", "--ignore-missing", f"--format={_FORMAT}", *wanted
        )
    return parse_log(result.out)


async def history(records: Iterable[SyncLike], repo_dir: Path) -> list[HistoryEntry]:
    """:func:`join` of `records` with the commits read from `repo_dir`."""
    listed = list(records)
    commits = await read_commits(repo_dir, (r.revision for r in listed))
    return join(listed, commits)
