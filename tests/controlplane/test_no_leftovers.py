"""No process, port or directory of the kit outlives its owner: on a clean exit, on a failing
test, on Ctrl-C, and on SIGKILL of the owner (processes die with it; the directory is swept by the
next kit). Each case runs a real kit in a child Python process and inspects the machine after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.controlplane import processes, runstate

pytestmark = pytest.mark.clusters

CHILD = r"""
import json, os, sys, time
from pathlib import Path
from fleet.controlplane import LocalProvider, processes
mode, out = sys.argv[1], Path(sys.argv[2])
kit = LocalProvider(kubeconfig_dir=out / "clusters", progress=lambda m: None)
with kit:
    clusters = kit.up(["leak-1"])
    info = {"kit_id": kit.kit_id, "run_dir": str(kit.run_dir), "log_dir": str(kit.log_dir),
            "ports": [c.port for c in clusters],
            "pids": sorted(processes.find_marked(kit.kit_id)),
            "kubeconfigs": [str(c.kubeconfig) for c in clusters]}
    (out / "info.json").write_text(json.dumps(info))
    if mode == "fail":
        raise RuntimeError("a failing test")
    if mode in ("sigint", "sigkill"):
        time.sleep(600)
"""


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                    inodes.add(inode)
    return inodes


def _port_holders(port: int) -> set[int]:
    """PIDs holding a listening socket on `port` (other tests' clusters may reuse a freed port,
    so a busy port alone proves nothing: what matters is who holds it)."""
    inodes = _listening_inodes(port)
    holders = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue
        if any(link.startswith("socket:[") and link[8:-1] in inodes for link in links):
            holders.add(int(proc.name))
    return holders


def _run_child(
    mode: str, out: Path, run_root: Path
) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    env = dict(os.environ, FLEET_KIT_RUN_DIR=str(run_root))
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(out)], env=env)
    info_path = out / "info.json"
    deadline = time.monotonic() + 300
    while not info_path.exists():
        assert child.poll() is None or info_path.exists(), "the child kit failed to start"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return child, json.loads(info_path.read_text())


def _assert_gone(info: dict[str, object], *, dir_too: bool) -> None:
    deadline = time.monotonic() + 15
    while processes.find_marked(str(info["kit_id"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes.find_marked(str(info["kit_id"])) == {}
    kit_pids = set(info["pids"])  # type: ignore[call-overload]
    for port in info["ports"]:  # type: ignore[attr-defined]
        holders = _port_holders(port)
        assert not holders & kit_pids
        assert not any(pid in processes.find_marked(str(info["kit_id"])) for pid in holders)
    if dir_too:
        assert not Path(str(info["run_dir"])).exists()
        for path in info["kubeconfigs"]:  # type: ignore[attr-defined]
            assert not Path(path).exists()


@pytest.mark.parametrize("mode", ["clean", "fail", "sigint"])
def test_nothing_outlives_the_owner(mode: str, tmp_path: Path) -> None:
    run_root = tmp_path / "run"
    child, info = _run_child(mode, tmp_path, run_root)
    if mode == "sigint":
        child.send_signal(signal.SIGINT)
    child.wait(timeout=120)
    _assert_gone(info, dir_too=True)
    if mode == "clean":
        assert not Path(str(info["log_dir"])).exists()
    if mode == "fail":
        assert Path(str(info["log_dir"])).exists(), "logs of a failed run are kept"


def test_sigkilled_owner_takes_its_processes_and_the_next_kit_sweeps(tmp_path: Path) -> None:
    run_root = tmp_path / "run"
    child, info = _run_child("sigkill", tmp_path, run_root)
    child.kill()
    child.wait(timeout=30)
    _assert_gone(info, dir_too=False)
    assert Path(str(info["run_dir"])).exists()
    swept = runstate.sweep_stale(run_root)
    assert swept == [info["kit_id"]]
    _assert_gone(info, dir_too=True)
