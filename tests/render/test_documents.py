"""Decoding manifests: multi-doc, lists, JSON, and every kind of bad input refused clearly."""

from __future__ import annotations

import pytest

from fleet.errors import ConfigError, StalledError
from fleet.render import DocumentLimits, Params, parse_documents
from fleet.types import ClusterRef

LIMITS = DocumentLimits(max_file_bytes=64 * 1024, max_nodes=5_000)

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"


def test_multi_doc_lists_and_json() -> None:
    text = (
        (CM % "a")
        + "---\n---\n"
        + "apiVersion: v1\nkind: List\nitems:\n  - "
        + ("{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n")
    )
    assert [
        o["metadata"]["name"]
        for o in parse_documents(text.encode(), source="x.yaml", limits=LIMITS)
    ] == ["a", "b"]
    js = b'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}'
    assert parse_documents(js, source="s.json", limits=LIMITS)[0]["kind"] == "Secret"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2\n", r"apps/x\.yaml: invalid YAML"),
        (
            "apiVersion: v1\nmetadata: {name: a}\n",
            r"apps/x\.yaml \(document 1\): object without kind",
        ),
        (
            CM % "a" + "---\nkind: ConfigMap\n",
            r"document 2\): object without apiVersion, metadata\.name",
        ),
        ("- 1\n", "expected a mapping"),
    ],
)
def test_bad_documents(text: str, message: str) -> None:
    with pytest.raises(StalledError, match=message):
        parse_documents(text.encode(), source="apps/x.yaml", limits=LIMITS)


def test_yaml_bomb_is_refused_before_expansion() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    bomb = "\n".join(lines) + "\n"
    with pytest.raises(StalledError, match="YAML bomb"):
        parse_documents(bomb.encode(), source="bomb.yaml", limits=LIMITS)


def test_small_anchors_are_fine_and_size_limit_applies() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: &l {x: y}}\ndata: *l\n"
    assert parse_documents(text.encode(), source="a.yaml", limits=LIMITS)[0]["data"] == {"x": "y"}
    with pytest.raises(StalledError, match="over the limit"):
        parse_documents(b"#" * (LIMITS.max_file_bytes + 1), source="big.yaml", limits=LIMITS)


def test_params_record_what_they_use() -> None:
    params = Params(ClusterRef("prod-eu", {"env": "prod", "region": "eu"}))
    assert params.text("deploy/{{ cluster.labels.env }}") == "deploy/prod"
    assert params.values({"n": "{{cluster.name}}", "k": [1, "x"]}) == {
        "n": "prod-eu",
        "k": [1, "x"],
    }
    assert params.used == {"labels.env": "prod", "name": "prod-eu"}
    with pytest.raises(ConfigError, match="no label 'tier'"):
        params.text("{{ cluster.labels.tier }}")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        params.text("{{ cluster.secret }}")
