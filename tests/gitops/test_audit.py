"""The history join: sync records from the hub's SQLite file with git log of the config repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.gitops import CommitInfo, history, join, read_commits
from fleet.report import History, SyncRecord
from tests.gitops.repos import ConfigRepo, git


def test_join_is_pure_and_keeps_unknown_commits() -> None:
    info = CommitInfo("a" * 40, "Ann", "ann@x", 100.0, 110.0, "bump app")
    records = [
        SyncRecord("web", "eu", "a" * 40, 150.0, 160.0, "synced"),
        SyncRecord("web", "us", "aaaaaaa", 170.0, 175.0, "synced"),  # abbreviated
        SyncRecord("web", "us", "b" * 40, 200.0, 210.0, "failed", committed_at=190.0),
        SyncRecord("web", "ap", "c" * 40, 200.0, 210.0, "failed"),
    ]
    entries = join(records, {info.sha: info})
    assert [e.commit for e in entries] == [info, info, None, None]
    assert [e.commit_to_applied for e in entries] == [50.0, 65.0, 20.0, None]
    assert [e.cluster for e in entries] == ["eu", "us", "us", "ap"]


@pytest.mark.anyio
async def test_history_from_sqlite_and_a_real_repo(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path, {"a.yaml": "1\n"})
    env = {"GIT_COMMITTER_DATE": "@1700000000 +0000", "GIT_AUTHOR_DATE": "@1699999000 +0000"}
    (repo.seed / "a.yaml").write_text("2\n")
    git("commit", "--quiet", "-am", "bump to 2", cwd=repo.seed, env=env)
    git("push", "--quiet", "origin", "main", cwd=repo.seed)
    sha = repo.head()
    db = History(tmp_path / "history.sqlite")
    db.record(SyncRecord("web", "eu", sha, 1700000030.0, 1700000042.5, "synced", configured=1))
    db.record(SyncRecord("web", "us", "f" * 40, 1700000050.0, 1700000051.0, "failed"))
    records = db.query(app="web")
    db.close()
    entries = await history(records, repo.bare)  # a bare mirror will do
    by_cluster = {e.cluster: e for e in entries}
    eu = by_cluster["eu"]
    assert eu.commit is not None and eu.commit.subject == "bump to 2"
    assert (eu.commit.author, eu.commit.email) == ("ci", "ci@example.com")
    assert eu.commit.committed_at == 1700000000.0 and eu.commit.authored_at == 1699999000.0
    assert eu.commit_to_applied == 42.5
    assert by_cluster["us"].commit is None  # unknown to git, kept
    assert await read_commits(repo.bare, ["--all", "HEAD", "not-hex"]) == {}
