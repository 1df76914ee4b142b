"""Per-cluster placeholders: only the cluster's name and labels, checked at load time."""

from __future__ import annotations

import pytest

from fleet.config import templates
from fleet.errors import ConfigError, StalledError
from fleet.types import ClusterRef

EU = ClusterRef("prod-eu", {"env": "prod", "region": "eu"})


def test_expand_and_inputs() -> None:
    template = "deploy/{{cluster.labels.env}}/{{ cluster.name }}"
    assert templates.expand(template, EU) == "deploy/prod/prod-eu"
    assert templates.inputs_used(template) == ("cluster.labels.env", "cluster.name")
    assert templates.inputs_used("plain/path") == ()
    values = {"a": ["{{ cluster.labels.region }}", 3], "b": {"c": "x"}}
    assert templates.expand_values(values, EU) == {"a": ["eu", 3], "b": {"c": "x"}}


@pytest.mark.parametrize("bad", ["{{ cluster.namespace }}", "{{ env }}", "{{ cluster.name", "{{}}"])
def test_validate_rejects(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^here: "):
        templates.validate(bad, where="here")


def test_missing_label_is_an_error_for_that_cluster() -> None:
    with pytest.raises(StalledError, match=r"cluster prod-eu has no label 'tier'"):
        templates.expand("x/{{ cluster.labels.tier }}", EU)
