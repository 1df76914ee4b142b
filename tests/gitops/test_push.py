"""Commit and push against real repositories: concurrent CI jobs all land, bounded retries.

Each job works in its own clone of one bare repository, as CI jobs do; the jobs run at the same
time in one anyio task group, so their pushes really race.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import yaml

from fleet.errors import StalledError, TransientError
from fleet.gitops import ImageSetResult, PushPolicy, images, set_image, source_commit
from tests.gitops.repos import ConfigRepo, git

pytestmark = pytest.mark.anyio
FAST = PushPolicy(attempts=8, base_delay=0.02, max_delay=0.2)
PROD = "deployment/prod/kustomization.yaml"


def _tags(repo: ConfigRepo) -> dict[str, str]:
    data = yaml.safe_load(repo.show(PROD))
    return {entry["name"]: entry.get("newTag", "") for entry in data["images"]}


async def _bump(
    repo_arg: str,
    arg: str,
    *,
    source: str = "",
    branch: str | None = None,
    policy: PushPolicy = FAST,
) -> ImageSetResult:
    return await set_image(
        repo=repo_arg,
        path="deployment/prod",
        changes=[images.parse(arg)],
        push=True,
        source=source,
        branch=branch,
        policy=policy,
    )


async def test_two_clones_bumping_at_once_both_land(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    job_a, job_b = repo.clone("job-a"), repo.clone("job-b")
    retried = 0
    for n in range(5):
        for clone in (job_a, job_b):  # each job starts from the same main, as fresh CI checkouts
            git("pull", "--quiet", "--ff-only", "origin", "main", cwd=clone)
        results: list[ImageSetResult] = []

        async def job(clone: Path, arg: str) -> None:
            results.append(await _bump(str(clone), arg, source=f"src{n}"))  # noqa: B023

        async with anyio.create_task_group() as tg:
            tg.start_soon(job, job_a, f"app=registry.example.com/app:a{n}")
            tg.start_soon(job, job_b, f"worker=registry.example.com/worker:b{n}")
        assert _tags(repo) == {"app": f"a{n}", "worker": f"b{n}", "cache": "7"}
        attempts = sorted(r.published.attempts for r in results if r.published)
        assert attempts[-1] >= 2  # one lost the race, re-applied its edit and landed
        retried += attempts[1] - 1
    log = repo.log()
    assert len(log) == 1 + 2 * 5
    for n in range(5):
        assert f"fleet: set image app to registry.example.com/app:a{n} in deployment/prod" in log
        assert (
            f"fleet: set image worker to registry.example.com/worker:b{n} in deployment/prod" in log
        )
    assert retried >= 5


async def test_three_jobs_cloning_the_url_all_land(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    for n in range(3):
        async with anyio.create_task_group() as tg:
            for arg in (f"app:x{n}", f"worker:y{n}", f"cache:z{n}"):
                tg.start_soon(_bump, repo.url, arg)
        assert _tags(repo) == {"app": f"x{n}", "worker": f"y{n}", "cache": f"z{n}"}
    # the file outside the images block is untouched after all those rebases
    first = repo.show(PROD, rev="main~9").splitlines()
    last = repo.show(PROD).splitlines()
    assert [ln for ln in first if "newTag" not in ln and "newName" not in ln] == [
        ln for ln in last if "newTag" not in ln and "newName" not in ln
    ]


async def test_same_image_raced_ends_at_one_of_them_without_conflict(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    job_a, job_b = repo.clone("a"), repo.clone("b")
    async with anyio.create_task_group() as tg:
        tg.start_soon(_bump, str(job_a), "app:one")
        tg.start_soon(_bump, str(job_b), "app:two")
    assert _tags(repo)["app"] in {"one", "two"}
    assert len(repo.log()) == 3


async def test_message_names_image_ref_and_source_commit(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert source_commit(None, {"GITHUB_SHA": sha}) == sha
    assert source_commit(None, {"CI_COMMIT_SHA": "c1", "GITHUB_SHA": "g1"}) == "c1"
    assert source_commit("explicit", {"GITHUB_SHA": sha}) == "explicit"
    result = await _bump(repo.url, "app=registry.example.com/app:9f8e7d", source=sha)
    assert result.published is not None and result.published.pushed_to == "main"
    body = git("log", "-1", "--format=%B", cwd=repo.bare)
    assert body.splitlines()[0] == (
        "fleet: set image app to registry.example.com/app:9f8e7d in deployment/prod"
    )
    assert f"Source-Commit: {sha}" in body and "Fleet-Path: deployment/prod" in body
    assert git("log", "-1", "--format=%an <%ae>", cwd=repo.bare)  # an identity without config


async def test_same_bump_twice_commits_nothing(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    await _bump(repo.url, "app:2.0")
    head = repo.head()
    again = await _bump(repo.url, "app:2.0")
    assert again.published is not None and again.published.commit is None
    assert not again.changed and repo.head() == head


async def test_branch_for_a_merge_request(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    main = repo.head()
    await _bump(repo.url, "app:mr1", branch="fleet/bump-app")
    assert repo.head() == main
    assert 'newTag: "mr1"' in repo.show(PROD, rev="fleet/bump-app")
    with pytest.raises(StalledError, match="branch 'fleet/bump-app' exists on origin"):
        await _bump(repo.url, "worker:mr2", branch="fleet/bump-app")


async def test_local_commits_under_ours_are_rebased_not_lost(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    work = repo.clone("work")
    (work / "notes.txt").write_text("local\n")
    git("add", "notes.txt", cwd=work)
    git("commit", "--quiet", "-m", "local note", cwd=work)
    repo.commit(repo.seed, {"other.txt": "upstream\n"}, message="upstream change")
    result = await _bump(str(work), "app:3.0")
    assert result.published is not None and result.published.attempts == 2
    assert repo.log()[:3] == [
        "fleet: set image app to app:3.0 in deployment/prod",
        "local note",
        "upstream change",
    ]


async def test_dirty_tree_and_bounded_attempts(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    work = repo.clone("work")
    (work / PROD).write_text((work / PROD).read_text() + "# local edit\n")
    with pytest.raises(StalledError, match="working tree is not clean"):
        await _bump(str(work), "app:4.0")
    git("checkout", "--", PROD, cwd=work)
    repo.commit(repo.seed, {"other.txt": "x\n"}, message="someone else")
    with pytest.raises(TransientError, match="rejected 1 times"):
        await _bump(str(work), "app:4.0", policy=PushPolicy(attempts=1))


async def test_edit_only_and_commit_only_stay_local(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path)
    work = repo.clone("work")
    head = repo.head()
    edited = await set_image(
        repo=str(work), path="deployment/prod", changes=[images.parse("app:5")]
    )
    assert edited.published is None and 'newTag: "5"' in (work / PROD).read_text()
    git("checkout", "--", PROD, cwd=work)
    done = await set_image(
        repo=str(work), path="deployment/prod", changes=[images.parse("app:6")], commit=True
    )
    assert done.published is not None and done.published.pushed_to is None
    assert repo.head() == head and git("status", "--porcelain", cwd=work) == ""
