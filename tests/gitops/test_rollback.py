"""Rollback by ``git revert`` in a real config repo: one commit, everything after a revision,
merges, and every refusal before anything changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import ConfigError, StalledError
from fleet.gitops import AppTarget, PushPolicy, RollbackRequest, app_target, rollback
from fleet.gitops.revert import pathspec
from tests.gitops.repos import ConfigRepo, git

pytestmark = pytest.mark.anyio
FAST = PushPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def _repo(tmp_path: Path) -> ConfigRepo:
    return ConfigRepo(
        tmp_path,
        {
            "deployment/prod/app.yaml": "tag: v1\n",
            "deployment/staging/app.yaml": "tag: v1\n",
            "other/app.yaml": "x: 1\n",
        },
    )


def _app(repo: ConfigRepo, path: str = "deployment/prod") -> AppTarget:
    return AppTarget(name="web", repo=repo.url, path=path)


async def test_revert_one_commit_and_push(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    bad = repo.commit(repo.seed, {"deployment/prod/app.yaml": "tag: v2\n"}, message="bump v2")
    repo.commit(repo.seed, {"other/app.yaml": "x: 2\n"}, message="other app")
    done = await rollback(_app(repo), RollbackRequest(commit=bad[:10]), policy=FAST)
    assert done.pushed_to == "main" and done.commit == repo.head()
    assert repo.show("deployment/prod/app.yaml") == "tag: v1"
    assert repo.show("other/app.yaml") == "x: 2"
    body = git("log", "-1", "--format=%B", cwd=repo.bare)
    assert body.startswith('Revert "bump v2"') and f"This reverts commit {bad}." in body
    assert "Fleet-App: web" in body


async def test_roll_back_to_a_revision_reverts_only_the_app(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    good = repo.head()
    repo.commit(repo.seed, {"deployment/prod/app.yaml": "tag: v2\n"}, message="v2")
    repo.commit(repo.seed, {"other/app.yaml": "x: 2\n"}, message="other")
    repo.commit(repo.seed, {"deployment/prod/extra.yaml": "a: 1\n"}, message="extra")
    repo.commit(repo.seed, {"deployment/prod/app.yaml": "tag: v3\n"}, message="v3")
    done = await rollback(_app(repo), RollbackRequest(to=good[:8]), policy=FAST)
    assert done.commit == repo.head()
    assert git("diff", "--stat", good, "main", "--", "deployment/prod", cwd=repo.bare) == ""
    assert repo.show("other/app.yaml") == "x: 2"
    body = git("log", "-1", "--format=%B", cwd=repo.bare)
    assert body.startswith(f"Roll back web to {good[:12]}")
    assert [ln.split(" ", 2)[2] for ln in body.splitlines() if ln.startswith("- ")] == [
        "v3",
        "extra",
        "v2",
    ]
    again = await rollback(_app(repo), RollbackRequest(to=good), policy=FAST)
    assert again.commit is None  # nothing left to roll back


async def test_templated_path_matches_every_overlay(tmp_path: Path) -> None:
    assert pathspec("deployment/{{ cluster.labels.env }}") == ":(top,glob)deployment/*/**"
    assert pathspec(".") == ":(top)"
    with pytest.raises(ConfigError):
        pathspec("../escape")
    repo = _repo(tmp_path)
    good = repo.head()
    repo.commit(repo.seed, {"deployment/staging/app.yaml": "tag: v2\n"}, message="staging v2")
    await rollback(
        _app(repo, "deployment/{{ cluster.labels.env }}"), RollbackRequest(to=good), policy=FAST
    )
    assert repo.show("deployment/staging/app.yaml") == "tag: v1"


async def test_refusals(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    other = repo.commit(repo.seed, {"other/app.yaml": "x: 9\n"}, message="other only")
    with pytest.raises(StalledError, match="does not touch deployment/prod"):
        await rollback(_app(repo), RollbackRequest(commit=other))
    # a commit that is on another branch only
    git("checkout", "--quiet", "-b", "feature", cwd=repo.seed)
    side = repo.commit(repo.seed, {"deployment/prod/app.yaml": "tag: side\n"}, message="side")
    git("push", "--quiet", "origin", "HEAD:refs/heads/feature", cwd=repo.seed)
    git("reset", "--quiet", "--hard", "HEAD~1", cwd=repo.seed)
    git("push", "--quiet", "--force", "origin", "HEAD:refs/heads/main", cwd=repo.seed)
    work = repo.clone("work")
    git("fetch", "--quiet", "origin", "feature", cwd=work)
    with pytest.raises(StalledError, match=f"commit {side[:12]} is not on branch main"):
        await rollback(_app(repo), RollbackRequest(commit=side), repo=str(work))
    with pytest.raises(StalledError, match="no commit 'deadbeef'"):
        await rollback(_app(repo), RollbackRequest(commit="deadbeef"), repo=str(work))
    (work / "other/app.yaml").write_text("dirty\n")
    with pytest.raises(StalledError, match="working tree is not clean"):
        await rollback(_app(repo), RollbackRequest(commit=other), repo=str(work))
    with pytest.raises(ConfigError, match="exactly one"):
        await rollback(_app(repo), RollbackRequest())


async def test_merge_needs_mainline(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    seed = repo.seed
    git("checkout", "--quiet", "-b", "feature", cwd=seed)
    (seed / "deployment/prod/app.yaml").write_text("tag: merged\n")
    git("commit", "--quiet", "-am", "feature work", cwd=seed)
    git("checkout", "--quiet", "main", cwd=seed)
    repo.commit(seed, {"other/app.yaml": "x: 3\n"}, message="main moves")
    git("merge", "--quiet", "--no-ff", "-m", "merge feature", "feature", cwd=seed)
    git("push", "--quiet", "origin", "main", cwd=seed)
    merge = repo.head()
    with pytest.raises(StalledError, match="is a merge of 2 parents; pass --mainline"):
        await rollback(_app(repo), RollbackRequest(commit=merge))
    assert repo.head() == merge
    await rollback(_app(repo), RollbackRequest(commit=merge, mainline=1), policy=FAST)
    assert repo.show("deployment/prod/app.yaml") == "tag: v1"
    assert repo.show("other/app.yaml") == "x: 3"


async def test_conflict_aborts_cleanly(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    first = repo.commit(repo.seed, {"deployment/prod/app.yaml": "tag: v2\n"}, message="v2")
    repo.commit(repo.seed, {"deployment/prod/app.yaml": "tag: v3\n"}, message="v3")
    work = repo.clone("work")
    head = git("rev-parse", "HEAD", cwd=work)
    with pytest.raises(StalledError, match=r"conflicts with later changes.*aborted"):
        await rollback(_app(repo), RollbackRequest(commit=first), repo=str(work))
    assert git("rev-parse", "HEAD", cwd=work) == head
    assert git("status", "--porcelain", cwd=work) == ""
    assert not (work / ".git" / "REVERT_HEAD").exists()


async def test_rollback_races_a_bump_and_both_land(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    bad = repo.commit(repo.seed, {"deployment/prod/app.yaml": "tag: v2\n"}, message="v2")
    work = repo.clone("work")  # stale by the next commit
    repo.commit(repo.seed, {"other/app.yaml": "x: 5\n"}, message="meanwhile")
    done = await rollback(_app(repo), RollbackRequest(commit=bad), repo=str(work), policy=FAST)
    assert done.attempts == 2
    assert repo.log()[:2] == ['Revert "v2"', "meanwhile"]


async def test_app_target_from_fleet_yaml(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "apps:\n  - name: web\n    source: {repoURL: 'file:///r.git', targetRevision: main,"
        " path: 'deployment/{{ cluster.labels.env }}'}\n    destination: {namespace: web}\n"
    )
    assert app_target(config, "web") == AppTarget(
        name="web", repo="file:///r.git", path="deployment/{{ cluster.labels.env }}", branch="main"
    )
    with pytest.raises(ConfigError, match="no app named 'api'"):
        app_target(config, "api")
