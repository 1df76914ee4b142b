"""Mirrors against real git: revisions, one listing per interval, one fetch per new commit."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest

from fleet.errors import StalledError, TransientError
from fleet.sources import Sources, SourceSettings
from tests.sources.gitkit import Remote, git


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_sources(tmp_path: Path, clock: Clock | None = None, **kw: float) -> Sources:
    settings = SourceSettings(cache_dir=tmp_path / "cache", **kw)  # type: ignore[arg-type]
    return Sources(settings, clock=clock or Clock())


@pytest.mark.anyio
async def test_revisions_branch_tag_commit_head(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    first = remote.commit({"a.yaml": "1"})
    remote.tag("v1")
    second = remote.commit({"a.yaml": "2"})
    dev = remote.commit({"a.yaml": "dev"}, branch="dev")
    sources = make_sources(tmp_path)
    assert (await sources.snapshot(remote.url, "main")).commit == second
    assert (await sources.snapshot(remote.url, "HEAD")).commit == second
    assert (await sources.snapshot(remote.url, "v1")).commit == first  # peeled annotated tag
    assert (await sources.snapshot(remote.url, "refs/heads/dev")).commit == dev
    assert (await sources.snapshot(remote.url, first)).commit == first
    assert (await sources.snapshot(remote.url, first[:10])).commit == first
    with pytest.raises(StalledError, match="no branch or tag"):
        await sources.snapshot(remote.url, "nope")


@pytest.mark.anyio
async def test_one_listing_per_interval_and_one_fetch_per_commit(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit({"a.yaml": "1"})
    clock = Clock()
    sources = make_sources(tmp_path, clock, interval=60.0)
    mirror = sources.mirror(remote.url)
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(sources.snapshot, remote.url, "main")
    assert (mirror.stats.ls_remotes, mirror.stats.fetches) == (1, 1)
    new = remote.commit({"a.yaml": "2"})
    assert (await sources.snapshot(remote.url, "main")).commit != new  # within the interval
    clock.now += 61
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(sources.snapshot, remote.url, "main")
    assert (await sources.snapshot(remote.url, "main")).commit == new
    assert (mirror.stats.ls_remotes, mirror.stats.fetches) == (2, 2)
    # the same repository spelled differently shares the mirror
    assert sources.mirror(str(remote.bare) + "/") is mirror


@pytest.mark.anyio
async def test_refresh_coalesces_with_the_one_in_flight(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit({"a.yaml": "1"})
    sources = make_sources(tmp_path)
    await sources.snapshot(remote.url, "main")
    remote.commit({"a.yaml": "2"})
    mirror = sources.mirror(remote.url)
    results: list[bool] = []

    async def refresh() -> None:
        results.append(await sources.refresh(remote.url))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(refresh)
    assert mirror.stats.ls_remotes <= 3  # the first listing, one in flight, at most one after
    assert any(results)


@pytest.mark.anyio
async def test_unreachable_remote_is_transient(tmp_path: Path) -> None:
    sources = make_sources(tmp_path, git_timeout=30.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connection refused
    with pytest.raises(TransientError, match="failed"):
        await sources.snapshot(f"http://127.0.0.1:{port}/repo.git", "main")


@pytest.mark.anyio
async def test_hanging_remote_does_not_block_other_repos(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit({"a.yaml": "1"})
    sources = make_sources(tmp_path, git_timeout=3.0)
    order: list[str] = []
    with socket.socket() as hang:  # listens, never answers
        hang.bind(("127.0.0.1", 0))
        hang.listen(16)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/repo.git"

        async def hanging() -> None:
            with pytest.raises(TransientError, match="timed out"):
                await sources.snapshot(url, "main")
            order.append("hanging")

        async def healthy() -> None:
            await sources.snapshot(remote.url, "main")
            order.append("healthy")

        async with anyio.create_task_group() as tg:
            tg.start_soon(hanging)
            await anyio.sleep(0.2)
            tg.start_soon(healthy)
    assert order == ["healthy", "hanging"]


@pytest.mark.anyio
async def test_extract_refuses_escaping_symlink(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit({"app/a.yaml": "x: 1"})
    remote.symlink("app/evil.yaml", "../../../../etc/passwd")
    sources = make_sources(tmp_path)
    snap = await sources.snapshot(remote.url, "main")
    with pytest.raises(StalledError, match=r"evil.yaml.*symlink.*escapes the repository"):
        await snap.extract(["app"], tmp_path / "out")
    ids = await snap.object_ids(["app", "app/a.yaml", "missing"])
    assert ids["app"] == git("rev-parse", "HEAD:app", cwd=remote.work)
    assert ids["missing"] is None
