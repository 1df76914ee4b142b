"""What git costs: 0 git processes for a no-op (a push's sha in place of a listing: test_pushed).

The processes are counted by a `git` shim on PATH (it logs each call and runs the real git), so
the count is what the hub's machine would run, whichever module runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from fleet.cache import CacheSettings, ManifestCache
from fleet.errors import FleetError, StalledError
from fleet.reconcile.desired import AppSource, DesiredState
from fleet.render import Renderer, RenderSettings
from fleet.sources import Mirror, Sources, SourceSettings
from fleet.sources.ancestry import is_ancestor
from fleet.types import ClusterRef
from tests.sources.gitkit import Remote

pytestmark = pytest.mark.anyio

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: '{v}'}}\n"


class GitCalls:
    """A `git` on PATH that logs its arguments, one call a line, and runs the real git."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real = shutil.which("git")
        assert real is not None
        self.log = root / "git-calls.log"
        shim = root / "shim" / "git"
        shim.parent.mkdir(parents=True)
        shim.write_text(f'#!/bin/sh\necho "$*" >> {self.log}\nexec {real} "$@"\n')
        shim.chmod(0o755)
        monkeypatch.setenv("PATH", f"{shim.parent}:{Path(real).parent}")
        self.log.touch()

    def take(self) -> list[str]:
        """The calls since the last take."""
        lines = self.log.read_text().splitlines()
        self.log.write_text("")
        return lines


async def test_a_no_op_runs_no_git_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a commit is fetched, planned and rendered, asking for the desired state again (what a
    no-op reconcile does, by branch and by HEAD, for any number of clusters) runs no git; nor does
    asking again whether one commit descends from another. A first ask does run git: the shim
    sees the calls."""
    calls = GitCalls(tmp_path, monkeypatch)
    remote = Remote(tmp_path)
    first = remote.commit({"app/cm.yaml": CONFIGMAP.format(name="a", v=1)})
    second = remote.commit({"app/cm.yaml": CONFIGMAP.format(name="a", v=2)})
    calls.take()
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
    state = DesiredState(
        sources=sources,
        renderer=Renderer(RenderSettings()),
        cache=ManifestCache(CacheSettings(root=tmp_path / "render")),
    )
    apps = [
        AppSource(name="by-branch", repo_url=remote.url, revision="main", path="app"),
        AppSource(name="by-head", repo_url=remote.url, revision="HEAD", path="app"),
    ]
    clusters = [ClusterRef(f"c{i}") for i in range(5)]
    for app in apps:
        for cluster in clusters:
            desired = await state.desired(app, cluster)
            assert desired.error is None and desired.commit == second
    assert calls.take(), "the first desired state ran no git: the shim counts nothing"
    for _ in range(3):
        for app in apps:
            for cluster in clusters:
                desired = await state.desired(app, cluster)
                assert desired.error is None and desired.commit == second
    assert calls.take() == []

    mirror = sources.mirror(remote.url)
    assert await is_ancestor(mirror, first, second)
    assert not await is_ancestor(mirror, second, first)
    assert len(calls.take()) == 2
    assert await is_ancestor(mirror, first, second)
    assert not await is_ancestor(mirror, second, first)
    assert calls.take() == []
    unknown = "0123456789" * 4  # "cannot tell" is not remembered: the commit may arrive later
    assert not await is_ancestor(mirror, unknown, second)
    assert not await is_ancestor(mirror, unknown, second)
    assert len(calls.take()) == 2


async def test_the_tree_listing_answers_as_git_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids, kinds and directory names read from the commit's one tree listing equal what git
    answers path by path (files, directories, a symlink, missing paths), and a commit's tree is
    listed once however many apps plan at it."""
    remote = Remote(tmp_path)
    remote.commit({"a/b/c.yaml": "c: 1\n", "a/k.yaml": "k: 1\n", "top.yaml": "t: 1\n"})
    commit = remote.symlink("a/link", "b/c.yaml")
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
    snapshot = await sources.snapshot(remote.url, "main")
    assert snapshot.commit == commit
    paths = ["a", "a/b", "a/b/c.yaml", "a/link", "top.yaml", "nope", "a/b/nope", "a/b/c.yaml/x"]

    async def answers() -> tuple[object, ...]:
        return (
            await snapshot.object_ids(paths),
            await snapshot.kinds(paths),
            sorted(await snapshot.names("")),
            sorted(await snapshot.names("a")),
            sorted(await snapshot.names("a/b")),
            await snapshot.read("a/b/c.yaml"),
            await snapshot.read("a/link"),
        )

    listed = await answers()
    for _ in range(10):
        assert await answers() == listed
    mirror = sources.mirror(remote.url)
    assert mirror.stats.trees_listed == 1

    async def no_tree(commit: str) -> None:
        return None

    monkeypatch.setattr(mirror, "tree", no_tree)
    assert await answers() == listed  # path by path, through git cat-file and ls-tree
    ids = listed[0]
    assert isinstance(ids, dict) and ids["nope"] is None and ids["a/b"] is not None
    assert listed[5:] == (b"c: 1\n", b"b/c.yaml")


async def test_a_file_a_commit_left_alone_is_read_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a new commit that changed one file, reading the files it left alone runs no cat-file
    (the blob is kept by id); the changed file and the new tree are read from git, once."""
    calls = GitCalls(tmp_path, monkeypatch)
    remote = Remote(tmp_path)
    remote.commit({"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=0.0))
    first = await sources.snapshot(remote.url, "main")
    assert await first.read("a.yaml") == b"a: 1\n" and await first.read("b.yaml") == b"b: 1\n"
    remote.commit({"b.yaml": "b: 2\n"})
    second = await sources.snapshot(remote.url, "main")
    calls.take()
    assert await second.read("a.yaml") == b"a: 1\n"
    assert [c for c in calls.take() if "cat-file" in c] == []
    assert await second.read("b.yaml") == b"b: 2\n"
    assert len([c for c in calls.take() if "cat-file" in c]) == 1
    with pytest.raises(StalledError, match="no file"):
        await second.read("nope.yaml")


def _laid_out(root: Path) -> dict[str, tuple[str, bytes | str, bool]]:
    out: dict[str, tuple[str, bytes | str, bool]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("link", str(path.readlink()), False)
        elif path.is_file():
            out[rel] = ("file", path.read_bytes(), bool(path.stat().st_mode & 0o100))
        else:
            out[rel] = ("dir", b"", False)
    return out


async def test_extract_from_blobs_lays_out_what_git_archive_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkout written from the tree listing and the kept blobs equals the one unpacked from
    ``git archive`` (files, an executable, a symlink, nested directories), and a symlink that
    leaves the repository is refused both ways."""
    remote = Remote(tmp_path)
    remote.commit({"app/k.yaml": "k: 1\n", "app/sub/x.yaml": "x: 1\n", "base/b.yaml": "b: 1\n"})
    (remote.work / "app" / "run.sh").write_text("#!/bin/sh\n")
    (remote.work / "app" / "run.sh").chmod(0o755)
    remote.symlink("app/link", "sub/x.yaml")
    remote.symlink("bad/esc", "../../outside")
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
    snapshot = await sources.snapshot(remote.url, "main")
    await snapshot.extract(["app", "base/b.yaml"], tmp_path / "from-blobs")
    with pytest.raises(StalledError, match="escapes the repository"):
        await snapshot.extract(["bad"], tmp_path / "bad-blobs")
    with pytest.raises(StalledError, match=r"cannot read app, nowhere: no path 'nowhere'$"):
        await snapshot.extract(["app", "nowhere"], tmp_path / "missing")  # words, not a list
    mirror = sources.mirror(remote.url)
    assert mirror.stats.trees_listed == 1

    async def no_tree(commit: str) -> None:
        return None

    monkeypatch.setattr(mirror, "tree", no_tree)
    await snapshot.extract(["app", "base/b.yaml"], tmp_path / "from-archive")
    with pytest.raises(StalledError, match="escapes the repository"):
        await snapshot.extract(["bad"], tmp_path / "bad-archive")
    blobs, archive = _laid_out(tmp_path / "from-blobs"), _laid_out(tmp_path / "from-archive")
    assert blobs == archive
    assert blobs["app/link"] == ("link", "sub/x.yaml", False)
    assert blobs["app/run.sh"][2] is True and "bad/esc" not in blobs


async def test_many_apps_resolving_a_new_commit_share_one_check_and_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty callers resolving a branch that moved to a commit the mirror lacks (a webhook's
    fan-out) cost one listing, one fetch and a few checks in all, not a git process each."""
    calls = GitCalls(tmp_path, monkeypatch)
    remote = Remote(tmp_path)
    remote.commit({"a.yaml": "a: 1\n"})
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
    await sources.snapshot(remote.url, "main")
    new = remote.commit({"a.yaml": "a: 2\n"})
    assert await sources.refresh(remote.url) is True
    calls.take()
    got: list[str] = []

    async def one() -> None:
        got.append((await sources.snapshot(remote.url, "main")).commit)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(one)
    assert got == [new] * 50
    made = calls.take()
    assert len([c for c in made if " fetch " in f" {c} "]) == 1
    assert len(made) <= 5, made


async def test_many_callers_of_a_commit_whose_fetch_fails_share_one_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the one fetch of a new commit fails (the remote went away after its listing), every
    caller waiting on it gets that failure: one fetch tried, not one more per caller."""
    calls = GitCalls(tmp_path, monkeypatch)
    remote = Remote(tmp_path)
    remote.commit({"a.yaml": "a: 1\n"})
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
    await sources.snapshot(remote.url, "main")
    remote.commit({"a.yaml": "a: 2\n"})
    assert await sources.refresh(remote.url) is True
    shutil.move(remote.bare, tmp_path / "gone.git")  # listed, then gone before the fetch
    calls.take()
    failures: list[BaseException] = []

    async def one() -> None:
        try:
            await sources.snapshot(remote.url, "main")
        except FleetError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(one)
    assert len(failures) == 20
    fetches = [c for c in calls.take() if " fetch " in f" {c} "]
    assert len(fetches) == 1, fetches


async def test_the_targets_of_a_new_commit_share_one_ancestry_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty callers asking at once whether the new commit descends from the old one (the
    rewind check of every target rolling it out) run one ``merge-base``, and all get its answer,
    yes or no."""
    calls = GitCalls(tmp_path, monkeypatch)
    remote = Remote(tmp_path)
    first = remote.commit({"a.yaml": "a: 1\n"})
    second = remote.commit({"a.yaml": "a: 2\n"})
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
    await sources.snapshot(remote.url, "main")
    mirror = sources.mirror(remote.url)
    for old, new, expected in [(first, second, True), (second, first, False)]:
        calls.take()
        got: list[bool] = []
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(_ask_into, got, mirror, old, new)
        assert got == [expected] * 20
        assert len([c for c in calls.take() if " merge-base " in f" {c} "]) == 1


async def _ask_into(got: list[bool], mirror: Mirror, old: str, new: str) -> None:
    got.append(await is_ancestor(mirror, old, new))


async def test_many_tenants_at_once_read_their_files_with_a_few_git_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 clusters, each with a kustomization of its own over one base, ask for their desired
    state at once (32 at a time, as the hub's workers do): the blobs none of them had read are
    read with a few `cat-file --batch` processes shared by whoever asked meanwhile, not one per
    tenant, and every tenant gets its own objects."""
    calls = GitCalls(tmp_path, monkeypatch)
    remote = Remote(tmp_path)
    names = [f"t{i:03d}" for i in range(200)]
    files = {
        "tenants/base/kustomization.yaml": "resources: [cm.yaml]\n",
        "tenants/base/cm.yaml": CONFIGMAP.format(name="settings", v=1),
    }
    for name in names:
        files[f"tenants/{name}/kustomization.yaml"] = f"namePrefix: {name}-\nresources: [../base]\n"
    remote.commit(files)
    sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
    state = DesiredState(
        sources=sources,
        renderer=Renderer(RenderSettings()),
        cache=ManifestCache(CacheSettings(root=tmp_path / "render")),
    )
    app = AppSource(
        name="web", repo_url=remote.url, revision="main", path="tenants/{{ cluster.name }}"
    )
    await sources.snapshot(remote.url, "main")  # fetched and listed before the burst
    calls.take()
    limit = anyio.CapacityLimiter(32)
    got: dict[str, list[str]] = {}

    async def one(name: str) -> None:
        async with limit:
            desired = await state.desired(app, ClusterRef(name))
        assert desired.error is None and desired.rendered is not None, desired.error
        got[name] = [o["metadata"]["name"] for o in desired.rendered.objects]

    async with anyio.create_task_group() as group:
        for name in names:
            group.start_soon(one, name)
    assert got == {name: [f"{name}-settings"] for name in names}
    reads = [c for c in calls.take() if "cat-file" in c]
    assert 1 <= len(reads) <= 50, reads  # 200, one per tenant, before reads were coalesced
    assert sources.mirror(remote.url).stats.trees_listed == 1
