"""``fleet run``'s shard options: a wrong one is a usage error (exit 2) naming the option."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fleet.shard import options
from tests.hub.hubkit import fleet_cli

pytestmark = pytest.mark.anyio


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_no_kubeconfig_means_no_sharding() -> None:
    assert options.settings(parsed()) is None


def test_the_options_make_the_settings(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "mgmt.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    made = options.settings(
        parsed(
            "--shard-kubeconfig",
            str(kubeconfig),
            "--shard-namespace",
            "ops",
            "--shard-lease-seconds",
            "30",
            "--replica-id",
            "hub-0",
        )
    )
    assert made is not None
    assert (made.namespace, made.lease_seconds, made.replica_id) == ("ops", 30.0, "hub-0")
    default = options.settings(parsed("--shard-kubeconfig", str(kubeconfig)))
    assert default is not None and default.replica_id  # hostname-pid


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--shard-kubeconfig", "missing.yaml"], "--shard-kubeconfig missing.yaml: no such file"),
        (["--shard-lease-seconds", "1"], "--shard-lease-seconds 1: must be at least 3"),
    ],
)
async def test_fleet_run_refuses_a_wrong_option(tmp_path: Path, argv: list[str], says: str) -> None:
    kubeconfig = tmp_path / "mgmt.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    if "--shard-kubeconfig" not in argv:
        argv = ["--shard-kubeconfig", str(kubeconfig), *argv]
    code, _, err = await fleet_cli(
        "run", "--config", str(tmp_path / "fleet.yaml"), "--clusters", str(tmp_path / "c"),
        "--state-dir", str(tmp_path / "s"), "--listen", "127.0.0.1:0", *argv,
    )  # fmt: skip
    assert code == 2, err
    assert says in err


def test_in_cluster_management_and_the_api_url(tmp_path: Path) -> None:
    made = options.settings(
        parsed("--shard-in-cluster", "--shard-api-url", "http://10.0.0.7:8080/")
    )
    assert made is not None
    assert made.kubeconfig is None  # the cluster the hub runs in
    assert made.api_url == "http://10.0.0.7:8080"
    kubeconfig = tmp_path / "mgmt.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ValueError, match="give one of them"):
        options.settings(parsed("--shard-in-cluster", "--shard-kubeconfig", str(kubeconfig)))
    with pytest.raises(ValueError, match="--shard-api-url ftp://x"):
        options.settings(parsed("--shard-in-cluster", "--shard-api-url", "ftp://x"))
