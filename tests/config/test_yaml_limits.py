"""The config's YAML is decoded within limits: an alias bomb, a huge file or a recursive alias
in fleet.yaml (or in a Helm ``values`` text) is refused naming the file, never expanded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet import yamlsafe
from fleet.config import loading
from fleet.errors import ConfigError


def _bomb(levels: int, *, indent: str = "") -> str:
    """A "billion laughs": each level is a list of ten aliases of the one before."""
    lines = [f'{indent}l0: &l0 ["lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"{indent}l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def _app(extra: str) -> str:
    return f"""apps:
  - name: bomb
    source:
      repoURL: https://git.example/a.git
      path: app
      helm:
{extra}
    destination: {{namespace: bomb}}
"""


def test_an_alias_bomb_in_fleet_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    values = "        valuesObject:\n" + _bomb(6, indent="          ")  # 10**6 nodes expanded
    path.write_text(_app(values))
    with pytest.raises(ConfigError, match="YAML bomb") as caught:
        loading.load(path)
    assert str(caught.value).startswith(f"{path} (document 1): expands to over")


def test_a_billion_laughs_is_refused_too(tmp_path: Path) -> None:
    """Nine levels, 10**9 nodes: refused as soon as the count passes the limit."""
    (tmp_path / "fleet.yaml").write_text(_bomb(9) + "apps: []\n")
    with pytest.raises(ConfigError, match="YAML bomb"):
        loading.load(tmp_path)


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text("apps: &a [*a]\n")
    with pytest.raises(ConfigError, match=r"fleet\.yaml .*expands to over"):
        loading.load(tmp_path / "fleet.yaml")


def test_a_bomb_in_helm_values_text_is_refused_naming_the_field(tmp_path: Path) -> None:
    text = _bomb(6, indent="          ")
    path = tmp_path / "fleet.yaml"
    path.write_text(_app("        values: |\n" + text))
    with pytest.raises(ConfigError, match=r"helm\.values \(document 1\): expands to over"):
        loading.load(path)


def test_load_documents_is_bounded_too() -> None:
    with pytest.raises(ConfigError, match=r"ops@abc:fleet\.yaml .*YAML bomb"):
        loading.load_documents(_bomb(7) + "apps: []\n", "ops@abc:fleet.yaml")


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("apps: []\n#" + "x" * loading.LIMITS.max_file_bytes)
    with pytest.raises(
        ConfigError, match=rf"{re.escape(str(path))}: file is .* bytes, over the limit"
    ):
        loading.load(path)
    with pytest.raises(ConfigError, match=r"f\.yaml: file is .* bytes, over the limit"):
        loading.load_documents(path.read_text(), "f.yaml")


def test_the_bounded_loader_keeps_what_plain_yaml_reads() -> None:
    text = "a: &x {b: [1, 2]}\nc: *x\n---\n---\nd: 'e'\n"
    assert yamlsafe.load_yaml(text, source="t") == [
        {"a": {"b": [1, 2]}, "c": {"b": [1, 2]}},
        None,
        {"d": "e"},
    ]
    with pytest.raises(yamlsafe.YamlRefused, match="t: invalid YAML"):
        yamlsafe.load_yaml("a: [", source="t")
    with pytest.raises(yamlsafe.YamlRefused, match=r"t: (nested too deeply|invalid YAML)"):
        yamlsafe.load_yaml("[" * 100_000 + "]" * 100_000, source="t")
