"""Each bench in its smallest configuration: it runs, and writes well-formed results.

One cluster (the session's kit, through ``--clusters-from``, so no bench starts a kit of its
own), two commits, ten cluster entries, short windows. Nothing here asserts speed: only that every
bench produces the figures its README section promises, so CI proves they still work.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import many_clusters, noop_cost, scaling, sync_latency
from fleet.controlplane import RunningCluster

pytestmark = [pytest.mark.clusters, pytest.mark.timeout(300)]


@pytest.fixture
def one_cluster(kit_clusters: list[RunningCluster], tmp_path: Path) -> list[str]:
    """``--clusters-from DIR`` with the first kit cluster's kubeconfig alone."""
    directory = tmp_path / "kubeconfigs"
    directory.mkdir()
    first = kit_clusters[0]
    (directory / f"{first.name}.yaml").write_bytes(first.kubeconfig.read_bytes())
    return ["--clusters-from", str(directory)]


def _read(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    assert "machine" in data
    return data


def _is_summary(value: object, n: int) -> None:
    assert isinstance(value, dict)
    assert value["n"] == n
    for key in ("p50", "p90", "p99", "max"):
        assert isinstance(value[key], float)
        assert value[key] >= 0


def test_sync_latency(tmp_path: Path, one_cluster: list[str]) -> None:
    out = tmp_path / "sync.json"
    sync_latency.main(
        ["--clusters", "1", "--objects", "4", "--commits", "2", "--warmup", "0",
         "--poll-commits", "1", "--poll-interval", "1", "--out", str(out), *one_cluster]
    )  # fmt: skip
    data = _read(out)
    for mode in ("webhook", "floor", "baseline"):
        _is_summary(data[mode]["overall"], 2)  # type: ignore[index]
    _is_summary(data["poll"]["overall"], 1)  # type: ignore[index]
    ratios = data["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["fleet_over_floor"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_noop_cost(tmp_path: Path, one_cluster: list[str]) -> None:
    out = tmp_path / "noop.json"
    noop_cost.main(
        ["--clusters", "1", "--objects", "4", "--resync-interval", "2", "--poll-interval", "1",
         "--window", "3", "--background-window", "1", "--settle", "0", "--out", str(out),
         *one_cluster]
    )  # fmt: skip
    data = _read(out)
    for key in ("writes_total", "renders", "hub_fetches", "git_requests_per_repo_per_interval",
                "requests_per_resync_per_cluster", "hub_cpu_s", "hub_rss_mib"):  # fmt: skip
        assert isinstance(data[key], int | float), key
    assert data["clusters"] == 1


def test_scaling(tmp_path: Path, one_cluster: list[str]) -> None:
    out = tmp_path / "scaling.json"
    scaling.main(
        ["--counts", "1", "--objects", "4", "--commits", "2", "--warmup", "0", "--settle", "0",
         "--out", str(out), *one_cluster]
    )  # fmt: skip
    rows = _read(out)["rows"]
    assert isinstance(rows, list)
    assert [r["clusters"] for r in rows] == [1]
    _is_summary(rows[0]["latency"], 2)
    assert rows[0]["hub_rss_mib_idle"] > 0


def test_many_clusters(tmp_path: Path, one_cluster: list[str]) -> None:
    out = tmp_path / "many.json"
    many_clusters.main(
        ["--servers", "1", "--entries", "10", "--settle", "0", "--idle-window", "1",
         "--out", str(out), *one_cluster]
    )  # fmt: skip
    rows = _read(out)["rows"]
    assert isinstance(rows, list)
    assert rows[0]["entries"] == 10
    _is_summary(rows[0]["commit_latency"], 10)
    assert rows[0]["hub_rss_mib_per_entry"] > 0
