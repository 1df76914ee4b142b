"""``fleet demo`` end to end, shortened to two clusters, as a user runs it: a subprocess.

The demo starts its own kit (not the session's clusters), so this also checks that it stops
everything it started. What it prints is the contract: the converged matrix, the commit read back
from every cluster, the revert read back from every cluster, and the audit trail.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.controlplane import processes

LIMIT = 150  # seconds: a safety net; the run takes ~25 s on 2 busy cores


def demo(*args: str, cwd: Path, timeout: float = LIMIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli.main", "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.clusters
def test_demo_runs_end_to_end_and_stops_what_it_started(tmp_path: Path) -> None:
    done = demo("--clusters", "2", "--dir", "demo", "--timeout", "60", cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, f"{done.stderr}\n{out}"
    assert done.stderr.count("error:") == 0

    # the converged matrix: both apps Synced/Healthy at the seed commit on their cluster
    seed = re.search(r"seed commit ([0-9a-f]{12})", out)
    assert seed, out
    assert re.search(rf"webapp-prod +Synced/Healthy @{seed[1][:7]} +-", out), out
    assert re.search(rf"webapp-staging +- +Synced/Healthy @{seed[1][:7]}", out), out

    # the commit, then its revert, read back from every cluster (by the demo's own clients)
    for image in (
        "registry.example.com/team/webapp:0.2.0",
        "registry.example.com/team/webapp:0.1.0",
    ):
        for cluster, env in (("staging-1", "staging"), ("prod-1", "prod")):
            line = rf"{cluster} +{env} +{re.escape(image)} @[0-9a-f]{{7}}: read from the cluster "
            assert re.search(line + r"\d+\.\d s after the push; hub's commit-to-applied \d", out), (
                f"{cluster} {image}\n{out}"
            )
    assert re.search(r"fleet rollback webapp-prod --commit [0-9a-f]{12}: a revert commit", out)
    assert "summary: commit" in out and "summary: revert" in out

    # the audit trail: fleet history joined with git log, commit-to-applied per cluster
    assert re.search(r"prod-1 +synced +\d+\.\d s  webapp-prod: Revert \"fleet: set image", out)
    assert out.rstrip().endswith("done: hub and clusters stopped")

    # nothing of the demo's kit is left running
    kit = re.search(r"starting 2 local clusters \((kit-[0-9a-f]+)\)", out)
    assert kit, out
    assert processes.find_marked(kit[1]) == {}
    assert (tmp_path / "demo" / ".fleet-demo").is_file()


def test_a_directory_it_did_not_make_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    done = demo("--dir", "mine", cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'mine'} is not empty and was not made by fleet demo; pass --dir"
    ]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me\n"
