"""Bad input to the kit gives one clear line naming the cause and a log file, and leaves nothing.

No Go toolchain, a failing Go build, a port in use, a cluster whose apiserver fails to start, and
the same through the command line (one ``error:`` line, exit 1, no traceback).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.controlplane import KitError, LocalProvider, binaries, processes
from fleet.settings import default_cache_dir


def test_no_go_toolchain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a directory with no `go` in it
    with pytest.raises(KitError, match=r"Go toolchain not found on PATH"):
        binaries.ensure_group(binaries.GROUPS["etcd"], cache_dir=tmp_path / "cache")


def test_failed_build_names_its_log(tmp_path: Path) -> None:
    module = tmp_path / "mods" / "broken"
    module.mkdir(parents=True)
    (module / "go.mod").write_text(
        "module fleet.local/broken\n\ngo 1.26\n\nrequire example.com/none v1.0.0\n"
    )
    (module / "main.go").write_text("package main\n\nfunc main() { this is not Go }\n")
    group = binaries.BuildGroup(
        "broken", "example.com/none", {"broken": "."}, root=tmp_path / "mods"
    )
    with pytest.raises(KitError) as caught:
        binaries.ensure_group(group, cache_dir=tmp_path / "cache", progress=lambda _: None)
    message = str(caught.value)
    assert "Go build of broken v1.0.0 failed" in message
    assert "\n" not in message
    log = Path(message.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.is_file() and "go build" in log.read_text()
    assert not list((tmp_path / "cache" / "controlplane" / "bin").iterdir())  # no half build


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.clusters
def test_port_in_use(tmp_path: Path, busy_port: int) -> None:
    kit = LocalProvider(
        kubeconfig_dir=tmp_path / "clusters",
        base_port=busy_port,
        run_root=tmp_path / "run",
        progress=lambda _: None,
    )
    with pytest.raises(KitError, match=rf"port 127\.0\.0\.1:{busy_port} .* is in use"):
        kit.up(["busy"])
    assert processes.find_marked(kit.kit_id) == {}
    assert not kit.run_dir.exists()


@pytest.mark.clusters
def test_cluster_that_fails_to_start(tmp_path: Path) -> None:
    kit = LocalProvider(
        kubeconfig_dir=tmp_path / "clusters",
        run_root=tmp_path / "run",
        apiserver_args=["--no-such-flag"],
        progress=lambda _: None,
    )
    with pytest.raises(KitError) as caught:
        kit.up(["broken"])
    message = str(caught.value)
    assert message.startswith("broken/kube-apiserver exited with code 1 before ready")
    assert "unknown flag: --no-such-flag" in message
    log = Path(message.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.is_file(), "the log of a failed start is kept"
    assert processes.find_marked(kit.kit_id) == {}
    assert not kit.run_dir.exists()
    assert not (tmp_path / "clusters" / "broken.yaml").exists()


@pytest.mark.clusters
def test_command_line_error_is_one_line(tmp_path: Path, busy_port: int) -> None:
    binaries.ensure_all(cache_dir=default_cache_dir(), progress=lambda _: None)
    env = dict(os.environ, FLEET_KIT_RUN_DIR=str(tmp_path / "run"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet.controlplane",
            "up",
            "-n",
            "1",
            "--provider",
            "local",
            "--dir",
            str(tmp_path / "clusters"),
            "--base-port",
            str(busy_port),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: port 127.0.0.1:")
    assert "Traceback" not in result.stderr


def test_command_line_rejects_bad_arguments(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleet.controlplane", "up", "-n", "0", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: -n must be at least 1, not 0"
