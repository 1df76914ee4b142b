"""The render API for Argo CD's fields (pure): per-cluster substitution reaches the new fields and
records the inputs it used, a spec's identity is plain data that tells specs apart, and a source
that names two tools, or a plugin, is refused by name before anything is read."""

from __future__ import annotations

import re
from typing import Literal

import pytest

from fleet.errors import StalledError
from fleet.render import (
    DirectoryOptions,
    HelmFileParameter,
    HelmOptions,
    HelmParameter,
    KustomizeOptions,
    Renderer,
    RenderSpec,
)
from fleet.types import ClusterRef, canonical_json

pytestmark = pytest.mark.anyio

CLUSTER = ClusterRef("prod-1", {"env": "prod", "zone": "eu"})


def test_substitution_reaches_the_new_fields_and_records_its_inputs() -> None:
    spec = RenderSpec.for_cluster(
        CLUSTER,
        path="charts/web",
        helm=HelmOptions(
            values="env: {{ cluster.labels.env }}\n",
            values_object={"zone": "{{ cluster.labels.zone }}"},
            parameters=(HelmParameter("cluster", "{{ cluster.name }}"),),
            file_parameters=(HelmFileParameter("cfg", "files/{{ cluster.labels.env }}.conf"),),
        ),
        app="web",
    )
    assert spec.helm is not None
    assert spec.helm.values == "env: prod\n"
    assert spec.helm.values_object == {"zone": "eu"}
    assert spec.helm.parameters == (HelmParameter("cluster", "prod-1"),)
    assert spec.helm.file_parameters == (HelmFileParameter("cfg", "files/prod.conf"),)
    assert spec.cluster_inputs == {"labels.env": "prod", "labels.zone": "eu", "name": "prod-1"}
    assert spec.app == "web"
    kust = RenderSpec.for_cluster(
        CLUSTER,
        path="app",
        kustomize=KustomizeOptions(
            images=("web=registry/{{ cluster.labels.env }}/web:1",),
            name_prefix="{{ cluster.labels.zone }}-",
            common_labels={"cluster": "{{ cluster.name }}"},
        ),
    )
    assert kust.kustomize is not None
    assert kust.kustomize.images == ("web=registry/prod/web:1",)
    assert kust.kustomize.name_prefix == "eu-"
    assert kust.kustomize.common_labels == {"cluster": "prod-1"}
    assert kust.cluster_inputs == {"labels.env": "prod", "labels.zone": "eu", "name": "prod-1"}


def test_identity_is_plain_data_that_tells_specs_apart() -> None:
    specs = [
        RenderSpec("p"),
        RenderSpec("p", helm=HelmOptions(parameters=(HelmParameter("a", "1"),))),
        RenderSpec("p", helm=HelmOptions(parameters=(HelmParameter("a", "1", True),))),
        RenderSpec("p", kustomize=KustomizeOptions(images=("a:1",))),
        RenderSpec("p", directory=DirectoryOptions()),
        RenderSpec("p", directory=DirectoryOptions(recurse=True)),
        RenderSpec("p", plugin=True),
        RenderSpec("p", app="a"),
    ]
    identities = {canonical_json(spec.identity()) for spec in specs}
    assert len(identities) == len(specs)
    assert canonical_json(RenderSpec("p").identity()) == canonical_json(RenderSpec("p").identity())


class NoTree:
    """A reader that fails the test if the engine reads anything."""

    async def kind(self, path: str) -> Literal["tree", "blob"] | None:
        raise AssertionError("read before the spec was checked")

    async def kinds(self, paths: list[str]) -> dict[str, Literal["tree", "blob"] | None]:
        raise AssertionError("read before the spec was checked")

    async def read(self, path: str) -> bytes:
        raise AssertionError("read before the spec was checked")

    async def names(self, path: str) -> list[str]:
        raise AssertionError("read before the spec was checked")


async def test_two_tools_or_a_plugin_are_refused_before_any_read() -> None:
    renderer = Renderer()
    cases = [
        (
            RenderSpec("p", helm=HelmOptions(), kustomize=KustomizeOptions(name_prefix="a-")),
            "multiple application sources defined: spec.source.helm and spec.source.kustomize",
        ),
        (
            RenderSpec("p", helm=HelmOptions(), directory=DirectoryOptions(recurse=True)),
            "multiple application sources defined: spec.source.helm and spec.source.directory",
        ),
        (RenderSpec("p", plugin=True), "spec.source.plugin: config management plugins"),
    ]
    for spec, naming in cases:
        with pytest.raises(StalledError, match=re.escape(naming)):
            await renderer.plan(NoTree(), spec)
