"""The cluster registry follows clusters/ on a real filesystem with real file events."""

from __future__ import annotations

from pathlib import Path

import anyio
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
