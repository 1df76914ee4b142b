"""``fleet cluster down`` stops only the kits of one directory (default ``clusters/``, as ``up``),
or with ``--all`` every kit of the caller: never a kit someone else started into another
directory. Two detached kits in a private run root, the real CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.controlplane import processes, runstate

pytestmark = pytest.mark.clusters


def _fleet(cwd: Path, run_root: Path, *args: str) -> str:
    env = dict(os.environ, FLEET_KIT_RUN_DIR=str(run_root))
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli.main", "cluster", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _live_kits(run_root: Path) -> dict[str, str]:
    """kit id -> its kubeconfig directory, for kits with processes still running."""
    return {
        state.kit_id: str(Path(state.kubeconfig_dir).resolve())
        for state in runstate.load_all(run_root)
        if processes.find_marked(state.kit_id)
    }


def test_down_stops_only_the_kits_of_its_directory(tmp_path: Path) -> None:
    run_root, here = tmp_path / "run", tmp_path / "work"
    here.mkdir()
    try:
        _fleet(here, run_root, "up", "-n", "1", "--prefix", "mine")  # into clusters/
        _fleet(here, run_root, "up", "-n", "1", "--prefix", "theirs", "--dir", "elsewhere")
        assert sorted(_live_kits(run_root).values()) == sorted(
            [str((here / "clusters").resolve()), str((here / "elsewhere").resolve())]
        )

        said = _fleet(here, run_root, "down")
        assert "writing into clusters" in said, said
        assert list(_live_kits(run_root).values()) == [str((here / "elsewhere").resolve())]
        assert not list((here / "clusters").glob("*.yaml")), "its kubeconfigs are removed"
        assert list((here / "elsewhere").glob("*.yaml")), "the other kit's are kept"

        _fleet(here, run_root, "down", "--all")
        assert _live_kits(run_root) == {}
    finally:
        _fleet(here, run_root, "down", "--all")
