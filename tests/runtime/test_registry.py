"""The cluster registry follows clusters/ on a real filesystem with real file events."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

import anyio
import anyio.abc
import pytest

from fleet.controlplane import kubeconfig
from fleet.runtime import registry

pytestmark = pytest.mark.anyio


def _drop(directory: Path, name: str, *, port: int = 6443, env: str = "prod") -> Path:
    path = directory / f"{name}.yaml"
    kubeconfig.write(
        path,
        kubeconfig.build(
            name=name,
            server=f"https://127.0.0.1:{port}",
            ca_pem=b"ca",
            client_cert_pem=b"c",
            client_key_pem=b"k",
            labels={"env": env},
        ),
    )
    return path


def test_compare_is_pure_and_complete(tmp_path: Path) -> None:
    _drop(tmp_path, "a")
    _drop(tmp_path, "b")
    before = registry.scan(tmp_path)
    _drop(tmp_path, "a", port=7000)  # changed
    (tmp_path / "b.yaml").unlink()  # left
    _drop(tmp_path, "c")  # joined
    (tmp_path / "d.yaml").write_text("not: [valid")  # broken from the start
    after = registry.scan(tmp_path)
    kinds = {c.name: c.kind for c in registry.compare(before, after)}
    assert kinds == {"a": "changed", "b": "left", "c": "joined", "d": "broken"}
    assert registry.compare(after, after) == []
    _drop(tmp_path, "d")
    repaired = registry.scan(tmp_path)
    assert [(c.name, c.kind) for c in registry.compare(after, repaired)] == [("d", "repaired")]


def test_two_files_for_one_name_are_an_error(tmp_path: Path) -> None:
    _drop(tmp_path, "a")
    (tmp_path / "a.yml").write_bytes((tmp_path / "a.yaml").read_bytes())
    snapshot = registry.scan(tmp_path)
    assert snapshot["a"].error is not None
    assert "also defined by" in snapshot["a"].error


async def test_watch_follows_the_directory(tmp_path: Path) -> None:
    send, receive = anyio.create_memory_object_stream[registry.Change](100)
    _drop(tmp_path, "early")

    async def listener(change: registry.Change) -> None:
        await send.send(change)

    reg = registry.ClusterRegistry(tmp_path, listener, rescan_interval=3600)

    async def expect(kind: str, name: str) -> registry.Change:
        with anyio.fail_after(10):  # a safety net; the watch answers in ~50 ms
            change = await receive.receive()
        assert (change.kind, change.name) == (kind, name)
        return change

    async with anyio.create_task_group() as tg:
        await tg.start(reg.run)
        first = await expect("joined", "early")
        assert first.entry is not None and first.entry.cluster is not None
        assert dict(first.entry.cluster.ref.labels) == {"env": "prod"}

        _drop(tmp_path, "late", env="staging")
        joined = await expect("joined", "late")
        assert joined.entry is not None and joined.entry.cluster is not None
        assert joined.entry.cluster.ref.labels["env"] == "staging"

        (tmp_path / "late.yaml").write_text("kind: Config\n")
        broken = await expect("broken", "late")
        assert broken.entry is not None and "no current-context" in str(broken.entry.error)
        assert set(reg.errors) == {"late"}
        assert reg.snapshot["early"].cluster is not None, "other clusters are unaffected"

        _drop(tmp_path, "late", env="staging")
        await expect("repaired", "late")
        assert reg.errors == {}

        _drop(tmp_path, "early", port=9999)
        await expect("changed", "early")

        (tmp_path / "early.yaml").unlink()
        await expect("left", "early")

        (tmp_path / "README.md").write_text("not a cluster")
        await reg.refresh()
        assert set(reg.snapshot) == {"late"}
        tg.cancel_scope.cancel()


# -- the rescan reads only what changed ------------------------------------------------------------

_HOUR_AGO_NS = time.time_ns() - 3600 * 10**9
_PADDING = "#" + "x" * (64 * 1024) + "\n"  # makes one file read stand out in the process's rchar


def _padded(directory: Path, name: str, *, port: int = 6443) -> Path:
    """A kubeconfig of ~64 KiB whose mtime is an hour ago (older than the racy window)."""
    path = _drop(directory, name, port=port)
    path.write_text(path.read_text() + _PADDING)
    os.utime(path, ns=(_HOUR_AGO_NS, _HOUR_AGO_NS))
    return path


def _bytes_read() -> int:
    """Bytes this process has read through read(2) and friends, by the kernel's count."""
    for line in Path("/proc/self/io").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "rchar":
            return int(value)
    raise AssertionError("/proc/self/io has no rchar line")


def _scan_counting(
    directory: Path, previous: registry.Snapshot
) -> tuple[dict[str, registry.Entry], int]:
    before = _bytes_read()
    snapshot = registry.scan(directory, previous)
    return snapshot, _bytes_read() - before


def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    for i in range(20):
        _padded(tmp_path, f"c{i}")
    first, read = _scan_counting(tmp_path, {})
    assert read >= 20 * len(_PADDING), "the first scan reads every file"
    assert all(e.stamp is not None for e in first.values()), "old files get a trusted stamp"

    again, read = _scan_counting(tmp_path, first)
    assert read < len(_PADDING), f"an unchanged directory was read again ({read} bytes)"
    assert all(again[name] is first[name] for name in first), "entries are kept as they are"
    assert registry.compare(first, again) == []


def test_a_rewrite_keeping_size_inode_and_mtime_is_seen(tmp_path: Path) -> None:
    for i in range(5):
        _padded(tmp_path, f"c{i}")
    first = registry.scan(tmp_path)
    target = tmp_path / "c3.yaml"
    rewritten = target.read_text().replace(":6443", ":6444")
    inode = target.stat().st_ino
    with target.open("r+") as f:  # in place: same inode, same size
        f.write(rewritten)
    os.utime(target, ns=(_HOUR_AGO_NS, _HOUR_AGO_NS))  # and the same mtime: only ctime tells
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (inode, _HOUR_AGO_NS)

    after, read = _scan_counting(tmp_path, first)
    assert [(c.kind, c.name) for c in registry.compare(first, after)] == [("changed", "c3")]
    assert after["c3"].cluster is not None and after["c3"].cluster.server.endswith(":6444")
    assert read < 4 * len(_PADDING), f"only the changed file is read ({read} bytes)"


def test_a_touch_keeps_the_parsed_cluster(tmp_path: Path) -> None:
    path = _padded(tmp_path, "a")
    first = registry.scan(tmp_path)
    os.utime(path, ns=(_HOUR_AGO_NS + 10**9, _HOUR_AGO_NS + 10**9))
    after = registry.scan(tmp_path, first)
    assert after["a"].stamp != first["a"].stamp, "the stamp moved, so the file was read"
    assert after["a"].cluster is first["a"].cluster, "same bytes: the parse is kept"
    assert registry.compare(first, after) == []


def test_a_file_written_just_now_is_read_again(tmp_path: Path) -> None:
    _drop(tmp_path, "fresh")  # mtime now: within the racy window
    first = registry.scan(tmp_path)
    assert first["fresh"].stamp is None, "a fresh stamp is not trusted"
    _, read = _scan_counting(tmp_path, first)
    assert read > 0


def test_a_broken_file_stays_broken_without_a_read_and_is_repaired(tmp_path: Path) -> None:
    broken = tmp_path / "b.yaml"
    broken.write_text("not: [valid" + _PADDING)
    os.utime(broken, ns=(_HOUR_AGO_NS, _HOUR_AGO_NS))
    first = registry.scan(tmp_path)
    assert first["b"].error is not None and "invalid YAML" in first["b"].error
    again, read = _scan_counting(tmp_path, first)
    assert again["b"] is first["b"] and read < len(_PADDING)
    _padded(tmp_path, "b")
    repaired = registry.scan(tmp_path, again)
    assert [(c.kind, c.name) for c in registry.compare(again, repaired)] == [("repaired", "b")]


def test_a_duplicate_name_is_broken_then_repaired(tmp_path: Path) -> None:
    _padded(tmp_path, "a")
    first = registry.scan(tmp_path)
    (tmp_path / "a.yml").write_bytes((tmp_path / "a.yaml").read_bytes())  # identical bytes
    dup = registry.scan(tmp_path, first)
    assert [(c.kind, c.name) for c in registry.compare(first, dup)] == [("broken", "a")]
    (tmp_path / "a.yml").unlink()
    fixed = registry.scan(tmp_path, dup)
    assert [(c.kind, c.name) for c in registry.compare(dup, fixed)] == [("repaired", "a")]
    assert fixed["a"].error is None


# -- a Kubernetes Secret/ConfigMap volume: files are links through a `..data` symlink --------------


def _publish(mount: Path, version: str, files: dict[str, str]) -> None:
    """Publish `files` as kubelet's atomic writer does: a new timestamped directory, a
    `..data_tmp` link to it renamed over `..data`, the old directory removed; the file links
    (`name -> ..data/name`) are made once and never change."""
    old = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
    new = mount / f"..{version}"
    new.mkdir()
    for name, text in files.items():
        (new / name).write_text(text)
        os.utime(new / name, ns=(_HOUR_AGO_NS, _HOUR_AGO_NS))  # the same mtime as before
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    (mount / "..data_tmp").symlink_to(new.name)
    os.rename(mount / "..data_tmp", mount / "..data")
    if old is not None:
        shutil.rmtree(mount / old)


def _kubeconfig_text(tmp_path: Path, name: str, *, port: int) -> str:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return _drop(scratch, name, port=port).read_text()


def test_a_configmap_data_swap_is_seen(tmp_path: Path) -> None:
    mount = tmp_path / "clusters"
    mount.mkdir()
    a1 = _kubeconfig_text(tmp_path, "a", port=6443)
    a2 = a1.replace(":6443", ":6444")  # the same size
    b = _kubeconfig_text(tmp_path, "b", port=7000)
    _publish(mount, "2026_12_01_v1", {"a.yaml": a1, "b.yaml": b})
    first = registry.scan(mount)
    assert set(first) == {"a", "b"}, "links through ..data are cluster files; ..data is not"

    _publish(mount, "2026_12_01_v2", {"a.yaml": a2, "b.yaml": b})
    after = registry.scan(mount, first)
    assert [(c.kind, c.name) for c in registry.compare(first, after)] == [("changed", "a")]
    assert after["a"].cluster is not None and after["a"].cluster.server.endswith(":6444")
    assert after["b"].cluster is first["b"].cluster, "b's bytes did not change: its parse is kept"


async def _until_watching(
    directory: Path, receive: anyio.abc.ObjectReceiveStream[registry.Change]
) -> None:
    """The watch starts after the first scan: rewrite a sentinel file until its event arrives,
    then remove it (and take that event too)."""
    with anyio.fail_after(60):
        for port in itertools.count(1000):
            _drop(directory, "sentinel", port=port)
            with anyio.move_on_after(1):
                assert (await receive.receive()).name == "sentinel"
                break
        (directory / "sentinel.yaml").unlink()
        while (await receive.receive()).kind != "left":
            pass


async def test_the_watch_sees_a_configmap_data_swap(tmp_path: Path) -> None:
    mount = tmp_path / "clusters"
    mount.mkdir()
    a1 = _kubeconfig_text(tmp_path, "a", port=6443)
    _publish(mount, "v1", {"a.yaml": a1})
    send, receive = anyio.create_memory_object_stream[registry.Change](100)

    async def listener(change: registry.Change) -> None:
        await send.send(change)

    reg = registry.ClusterRegistry(mount, listener, rescan_interval=3600)  # events alone
    async with anyio.create_task_group() as tg:
        await tg.start(reg.run)
        with anyio.fail_after(10):
            assert (await receive.receive()).kind == "joined"
        await _until_watching(mount, receive)
        _publish(mount, "v2", {"a.yaml": a1.replace(":6443", ":6444")})
        with anyio.fail_after(30):  # a safety net; the watch answers in ~50 ms
            change = await receive.receive()
        assert (change.kind, change.name) == ("changed", "a")
        tg.cancel_scope.cancel()


def test_a_link_target_rewritten_in_place_is_seen(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mount = tmp_path / "clusters"
    mount.mkdir()
    target = _padded(elsewhere, "a")
    (mount / "a.yaml").symlink_to(target)  # the link never changes, nor does its target's path
    os.utime(mount / "a.yaml", ns=(_HOUR_AGO_NS, _HOUR_AGO_NS), follow_symlinks=False)
    first = registry.scan(mount)
    target.write_text(target.read_text().replace(":6443", ":6444"))
    after = registry.scan(mount, first)
    assert [(c.kind, c.name) for c in registry.compare(first, after)] == [("changed", "a")]
