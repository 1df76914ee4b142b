"""A drop-in kubeconfig gives the cluster's name, labels and server; a broken one is an error
that names the file and never echoes its contents."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleet.config import clusters
from fleet.controlplane import kubeconfig
from fleet.errors import ConfigError


def _document(labels: dict[str, str] | None = None) -> dict[str, object]:
    return kubeconfig.build(
        name="whatever",
        server="https://127.0.0.1:6443",
        ca_pem=b"ca",
        client_cert_pem=b"cert",
        client_key_pem=b"SECRET-KEY-MATERIAL",
        labels=labels,
    )


def test_name_from_stem_and_labels_from_extension(tmp_path: Path) -> None:
    path = tmp_path / "prod-eu.yaml"
    kubeconfig.write(path, _document({"env": "prod", "tier": "1"}))
    parsed = clusters.read(path)
    assert parsed.ref.name == "prod-eu"
    assert dict(parsed.ref.labels) == {"env": "prod", "tier": "1"}
    assert parsed.server == "https://127.0.0.1:6443"
    assert "SECRET" not in repr(parsed)


def test_no_labels(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    kubeconfig.write(path, _document())
    assert dict(clusters.read(path).ref.labels) == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "key: [unclosed\n  SECRET-KEY-MATERIAL", r"a.yaml: invalid YAML at line"),
        ("b.yaml", "kind: Pod\n", r"b.yaml: not a kubeconfig"),
        ("c.yaml", "kind: Config\ncontexts: []\n", r"c.yaml: no current-context"),
        ("d.yaml", "kind: Config\ncurrent-context: x\ncontexts: []\n", r"no context named 'x'"),
        ("Bad_Name.yaml", "kind: Config\n", r"file stem 'Bad_Name' is not a valid cluster name"),
    ],
)
def test_broken_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        clusters.read(path)
    assert "SECRET" not in str(caught.value)


def test_missing_server(tmp_path: Path) -> None:
    document = _document()
    document["clusters"][0]["cluster"].pop("server")  # type: ignore[index]
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"x.yaml: cluster 'whatever' has no http\(s\) server"):
        clusters.read(path)


def test_which_files_are_clusters() -> None:
    assert clusters.is_cluster_file(Path("prod.yaml"))
    assert clusters.is_cluster_file(Path("prod.kubeconfig"))
    assert not clusters.is_cluster_file(Path(".prod.yaml.tmp"))
    assert not clusters.is_cluster_file(Path("README.md"))
    assert not clusters.is_cluster_file(Path("example.yaml.sample"))
