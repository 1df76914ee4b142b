"""The manifest cache: atomic entries, verified reads, GC by age and size, single flight, and in
the hub, disk writes that wait for the wave of work to end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import anyio
import pytest

from fleet.activity import Activity
from fleet.cache import CacheSettings, ManifestCache, SingleFlight, render_key
from fleet.types import RenderedSet


def rendered(name: str) -> RenderedSet:
    return RenderedSet.of([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}])


def temp_files(root: Path) -> list[Path]:
    return list(root.glob("*/.*.tmp"))


def test_key_depends_on_every_input() -> None:
    base = {"renderer": "plain", "version": "plain/1", "trees": {"a": "1"}, "inputs": {"p": "a"}}
    key = render_key(**base)  # type: ignore[arg-type]
    assert key == render_key(**base)  # type: ignore[arg-type]
    for field, value in [
        ("renderer", "helm"),
        ("version", "plain/2"),
        ("trees", {"a": "2"}),
        ("inputs", {"p": "b"}),
    ]:
        assert render_key(**{**base, field: value}) != key  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_put_get_and_corrupt_entry_is_a_removed_miss(tmp_path: Path) -> None:
    cache = ManifestCache(CacheSettings(root=tmp_path))
    key = "ab" * 32
    assert await cache.get(key) is None
    await cache.put(key, rendered("a"))
    assert await cache.get(key) == rendered("a")
    assert not temp_files(tmp_path)  # temp files renamed away
    path = cache.path_of(key)
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"b"'))
    assert await cache.get(key) is None
    assert not path.exists() and cache.stats.corrupt == 1


@pytest.mark.anyio
async def test_a_new_cache_finds_the_entries_on_disk_and_a_miss_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted hub's cache lists the entries on disk once: a key among them is read, a key
    not among them (a new commit's) is a miss without a read; an entry removed by hand is a miss
    and is forgotten."""
    kept, new = "ab" * 32, "cd" * 32
    await ManifestCache(CacheSettings(root=tmp_path)).put(kept, rendered("a"))
    cache = ManifestCache(CacheSettings(root=tmp_path))
    reads: list[str] = []
    read = cache._read

    def counted(key: str) -> RenderedSet | None:
        reads.append(key)
        return read(key)

    monkeypatch.setattr(cache, "_read", counted)
    assert await cache.get(kept) == rendered("a")
    assert await cache.get(new) is None
    assert reads == [kept]
    cache.path_of(kept).unlink()
    assert await cache.get(kept) is None and await cache.get(kept) is None
    assert reads == [kept, kept]  # read once more, then known gone
    await cache.put(new, rendered("b"))
    assert await cache.get(new) == rendered("b") and cache.stats.hits == 2


@pytest.mark.anyio
async def test_puts_during_a_write_are_readable_at_once_and_written_by_its_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One thread hop per batch: while the first put writes, the others return at once; their
    entries are served from memory, and are on disk when the first put returns."""
    cache = ManifestCache(CacheSettings(root=tmp_path))
    release, writing = threading.Event(), threading.Event()
    batches: list[list[str]] = []
    write_batch = cache._write_batch

    def slow(batch: dict[str, RenderedSet]) -> list[str]:
        batches.append(sorted(batch))
        writing.set()
        release.wait(10)
        return write_batch(batch)

    monkeypatch.setattr(cache, "_write_batch", slow)
    first, others = "aa" * 32, [f"b{i}" * 32 for i in range(1, 4)]
    async with anyio.create_task_group() as group:
        group.start_soon(cache.put, first, rendered("first"))
        await anyio.to_thread.run_sync(writing.wait, 10)
        for i, key in enumerate(others):
            with anyio.fail_after(1):  # never waits for the write under way
                await cache.put(key, rendered(str(i)))
            assert await cache.get(key) == rendered(str(i))
            assert not cache.path_of(key).exists()
        release.set()
    assert batches == [[first], sorted(others)]
    for key in [first, *others]:
        assert cache.path_of(key).exists()
    fresh = ManifestCache(CacheSettings(root=tmp_path))  # a restarted hub reads them from disk
    assert await fresh.get(others[0]) == rendered("0")


@pytest.mark.anyio
async def test_an_entry_that_cannot_be_written_is_a_miss_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    cache = ManifestCache(CacheSettings(root=blocked))
    key = "cd" * 32
    await cache.put(key, rendered("a"))  # the root is a file: the write fails, the put does not
    assert "event=cache_write_failed" in caplog.text
    assert await cache.get(key) is None and cache.stats.misses == 1


@pytest.mark.anyio
async def test_gc_by_age_then_size(tmp_path: Path) -> None:
    cache = ManifestCache(CacheSettings(root=tmp_path, max_age=500.0, max_bytes=10**6))
    now = time.time()
    for i in range(5):
        await cache.put(f"{i:02d}" * 32, rendered(str(i)))
        os.utime(cache.path_of(f"{i:02d}" * 32), (now - 1000 + i * 200, now - 1000 + i * 200))
    assert await cache.gc(now=now) == 3  # entries 0..2 unused for over 500 s
    size = cache.path_of("04" * 32).stat().st_size
    small = ManifestCache(CacheSettings(root=tmp_path, max_age=10**6, max_bytes=size))
    assert await small.gc(now=now) == 1  # the least recently used goes first
    assert cache.path_of("04" * 32).exists()


@pytest.mark.anyio
async def test_single_flight_coalesces_and_shares_errors() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.05)
        return 42

    results: list[int] = []

    async def call() -> None:
        results.append(await flight.do("k", work))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
    assert results == [42] * 10 and calls == 1

    async def fail() -> int:
        await anyio.sleep(0.05)
        raise ValueError("boom")

    errors: list[str] = []

    async def failing() -> None:
        try:
            await flight.do("k", fail)
        except ValueError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(failing)
    assert errors == ["boom"] * 3 and flight.runs == 2


@pytest.mark.anyio
async def test_in_the_hub_puts_are_held_until_the_wave_is_over(tmp_path: Path) -> None:
    """With the hub's writer running, a put during a wave only holds its entry (read from memory);
    the writer writes it once no work has run for `settle`; the stop's flush writes the rest."""
    activity = Activity()
    cache = ManifestCache(CacheSettings(root=tmp_path), activity=activity, settle=0.05)
    async with anyio.create_task_group() as group:
        await group.start(cache.run)
        with activity.working():  # a sync in flight
            await cache.put("a" * 64, rendered("a"))
            await anyio.sleep(0.3)  # six times `settle`: a write would have come by now
            assert not cache.path_of("a" * 64).exists() and len(cache) == 1
            assert await cache.get("a" * 64) == rendered("a")
        with anyio.fail_after(30):
            while len(cache):  # noqa: ASYNC110 - no event to wait on
                await anyio.sleep(0.02)
        assert cache.path_of("a" * 64).exists()
        with activity.working():  # held again, then the hub stops
            await cache.put("b" * 64, rendered("b"))
            await cache.flush()
            assert cache.path_of("b" * 64).exists() and not len(cache)
        group.cancel_scope.cancel()
    assert await ManifestCache(CacheSettings(root=tmp_path)).get("b" * 64) == rendered("b")


@pytest.mark.anyio
async def test_a_wave_that_never_ends_holds_puts_at_most_at_most(tmp_path: Path) -> None:
    activity = Activity()
    cache = ManifestCache(CacheSettings(root=tmp_path), activity=activity, at_most=0.2)
    async with anyio.create_task_group() as group:
        await group.start(cache.run)
        with activity.working():
            await cache.put("c" * 64, rendered("c"))
            with anyio.fail_after(30):
                while len(cache):  # noqa: ASYNC110 - no event to wait on
                    await anyio.sleep(0.02)
            assert cache.path_of("c" * 64).exists()
        group.cancel_scope.cancel()
