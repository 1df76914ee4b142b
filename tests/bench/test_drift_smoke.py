"""The drift bench at its smallest, on one kit cluster: one edit of each kind, both modes.

Beyond "it runs and writes its figures", it holds the hub to what the bench measures: with
selfHeal on every hand edit is seen by the hub and put back (the independent watcher serves the
applied object again); with selfHeal off every edit is seen, the target reads OutOfSync, and
nothing puts it back. No speed is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import drift_latency
from fleet.controlplane import RunningCluster

pytestmark = [pytest.mark.clusters, pytest.mark.timeout(420)]


def test_drift_latency_smallest(kit_clusters: list[RunningCluster], tmp_path: Path) -> None:
    directory = tmp_path / "kubeconfigs"
    directory.mkdir()
    first = kit_clusters[0]
    (directory / f"{first.name}.yaml").write_bytes(first.kubeconfig.read_bytes())
    out = tmp_path / "drift.json"
    drift_latency.main(
        ["--clusters", "1", "--objects", "4", "--edits", "1", "--manual-edits", "1",
         "--gap-min", "0.1", "--gap-max", "0.5", "--hold", "1.5", "--settle", "0",
         "--limit", "60", "--clusters-from", str(directory), "--out", str(out)]
    )  # fmt: skip
    data = json.loads(out.read_text())
    assert "machine" in data
    edits = data["edits"]
    assert sorted((e["mode"], e["kind"]) for e in edits) == sorted(
        (mode, kind) for mode in ("heal", "manual") for kind in drift_latency.KINDS
    )
    for edit in edits:
        assert edit["detected"] is not None, edit  # the hub saw every edit
        assert edit["sync_after_detect"] == "OutOfSync", edit
        if edit["mode"] == "heal":
            assert edit["healed"] is not None and edit["healed"] > edit["answered"], edit
            assert edit["sync_before"] == "Synced", edit
        else:
            assert edit["held"] is True, edit  # selfHeal off: nobody put it back
            assert edit["healed"] is None, edit
    heal = data["heal"]["all"]
    assert heal["detected"]["n"] == 3 and heal["healed"]["n"] == 3
    assert data["manual"]["all"]["not_healed_after_hold"] == 3
