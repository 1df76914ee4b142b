"""The status board and its app x cluster matrix."""

from __future__ import annotations

from fleet.report import Board, ClusterState, TargetStatus, matrix


def test_matrix_and_json() -> None:
    board = Board()
    board.clusters["eu"] = ClusterState("eu", state="ready")
    board.clusters["us"] = ClusterState("us", state="parked", error="connection refused")
    board.targets.commit(
        TargetStatus(
            "eu", "web", sync="Synced", health="Healthy", applied_commit="0123456789abcdef"
        )
    )
    board.targets.commit(TargetStatus("us", "web"))
    text = matrix(board.cells.values(), board.clusters.values())
    lines = text.splitlines()
    assert lines[0].split() == ["eu", "us"]
    assert lines[1].split() == ["web", "Synced/Healthy", "@0123456", "Unknown/Unknown"]
    assert lines[2] == "! us: parked: connection refused"
    data = board.to_json()
    assert [c["name"] for c in data["clusters"]] == ["eu", "us"]
    assert data["apps"][0]["revision"] == "0123456789abcdef"
    assert not data["summary"]["green"]
    assert data["summary"]["not_ready"] == ["web@eu", "web@us"]  # eu: applied != desired ("")
    board.targets.forget(("us", "web"), message="cluster left")
    assert list(board.cells) == [("web", "eu")]
