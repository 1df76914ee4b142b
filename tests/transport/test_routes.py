"""Parsing SSH routes and rewriting kubeconfigs: pure, errors name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleet.config import clusters
from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError
from fleet.transport import Endpoint, Hop, api_target, parse_route, tunneled_document


def cluster_file(
    ssh: Any = None, *, server: str = "https://10.0.0.5:6443", tls_name: str | None = None
) -> ClusterFile:
    extension: dict[str, Any] = {"labels": {"env": "edge"}}
    if ssh is not None:
        extension["ssh"] = ssh
    body: dict[str, Any] = {"server": server, "certificate-authority-data": "Q0E="}
    if tls_name:
        body["tls-server-name"] = tls_name
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": body}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [
            {
                "name": "x",
                "context": {
                    "cluster": "c",
                    "user": "u",
                    "extensions": [{"name": "fleet", "extension": extension}],
                },
            }
        ],
        "current-context": "x",
    }
    return clusters.parse(Path("/etc/fleet/clusters/edge-1.yaml"), document)


GOOD = {
    "jumps": [{"host": "bastion.example.com", "user": "fleet"}, {"host": "10.1.0.2", "port": 2222}],
    "user": "ops",
    "identityFile": "keys/edge",
    "knownHosts": "/etc/fleet/known_hosts",
}


def test_a_full_route() -> None:
    route = parse_route(cluster_file(GOOD))
    assert route is not None
    assert route.jumps == (
        Hop(host="bastion.example.com", port=22, user="fleet"),
        Hop(host="10.1.0.2", port=2222, user="ops"),
    )
    assert route.identity_file == Path("/etc/fleet/clusters/keys/edge")  # relative to the file
    assert route.known_hosts == Path("/etc/fleet/known_hosts")
    assert not route.accept_new_host_keys
    assert str(route) == "fleet@bastion.example.com:22 -> ops@10.1.0.2:2222"
    assert parse_route(cluster_file(dict(GOOD))) == route
    assert route.key == parse_route(cluster_file(dict(GOOD))).key  # type: ignore[union-attr]


def test_no_route_is_direct() -> None:
    assert parse_route(cluster_file()) is None


def test_agent_instead_of_a_key() -> None:
    spec = {k: v for k, v in GOOD.items() if k != "identityFile"} | {"agent": True}
    route = parse_route(cluster_file(spec))
    assert route is not None and route.identity_file is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"jumps": []}, r"ssh\.jumps: must be a non-empty list"),
        ({"jumps": "bastion"}, r"ssh\.jumps: must be a non-empty list"),
        ({"jumps": [{"host": "b", "port": 0}]}, r"ssh\.jumps\[0\]\.port: must be an integer"),
        ({"jumps": [{"host": "b", "port": "22"}]}, r"ssh\.jumps\[0\]\.port"),
        ({"jumps": [{"port": 22}]}, r"ssh\.jumps\[0\]\.host: required"),
        ({"jumps": [{"host": "b", "usr": "x"}]}, r"ssh\.jumps\[0\]: unknown field\(s\) usr"),
        ({"user": None, "jumps": [{"host": "b"}]}, r"ssh\.jumps\[0\]\.user: required"),
        ({"knownHosts": None}, r"ssh\.knownHosts: required"),
        ({"identityFile": None}, "exactly one of identityFile and agent"),
        ({"agent": True}, "exactly one of identityFile and agent"),
        ({"acceptNewHostKeys": "yes"}, r"ssh\.acceptNewHostKeys: must be true or false"),
        ({"identity": "k"}, r"unknown field\(s\) identity"),
    ],
)
def test_bad_routes_name_the_file_and_field(change: dict[str, Any], message: str) -> None:
    spec = {k: v for k, v in (GOOD | change).items() if v is not None}
    with pytest.raises(ConfigError, match=message) as caught:
        parse_route(cluster_file(spec))
    assert str(caught.value).startswith("/etc/fleet/clusters/edge-1.yaml: fleet extension ssh")


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"edge-1\.yaml: fleet extension ssh: must be a mapping"):
        parse_route(cluster_file(["bastion"]))


def test_api_target_and_tls_name() -> None:
    target = api_target(cluster_file(GOOD))
    assert (target.host, target.port, target.tls_server_name) == ("10.0.0.5", 6443, "10.0.0.5")
    named = api_target(cluster_file(GOOD, server="https://kube.internal", tls_name="apiserver"))
    assert (named.host, named.port, named.tls_server_name) == ("kube.internal", 443, "apiserver")
    plain = api_target(cluster_file(GOOD, server="http://kube.internal"))
    assert (plain.port, plain.tls_server_name) == (80, None)


def test_tunneled_document_changes_only_server_and_name() -> None:
    original = cluster_file(GOOD, server="https://kube.internal:6443")
    endpoint = Endpoint(
        cluster="edge-1", url="https://127.0.0.1:40000", tls_server_name="kube.internal"
    )
    document = tunneled_document(original, endpoint)
    body = document["clusters"][0]["cluster"]
    assert body == {
        "server": "https://127.0.0.1:40000",
        "tls-server-name": "kube.internal",
        "certificate-authority-data": "Q0E=",
    }
    assert document["users"] == original.document["users"]
    assert original.document["clusters"][0]["cluster"]["server"] == "https://kube.internal:6443"
    direct = Endpoint(cluster="edge-1", url=original.server, tls_server_name=None)
    assert tunneled_document(original, direct) == original.document
