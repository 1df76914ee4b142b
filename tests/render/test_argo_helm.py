"""Argo CD's ``spec.source.helm`` fields render exactly as ``helm template`` with the flags Argo CD
passes, with Argo CD's precedence (parameters > valuesObject > values > valueFiles), and each
field is part of the cache key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import StalledError
from fleet.render import HelmFileParameter, HelmOptions, HelmParameter, RenderSpec, helm
from tests.render.argokit import Rig, by_hand, helm_binary

pytestmark = pytest.mark.anyio

CM = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cfg
  namespace: {{ .Release.Namespace }}
data:
  replicas: {{ .Values.replicas | quote }}
  tag: {{ .Values.image.tag | quote }}
  name: {{ .Values.name | quote }}
  kind: {{ kindOf .Values.name | quote }}
  note: {{ .Values.note | quote }}
  config: {{ .Values.config | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  widgets: {{ .Capabilities.APIVersions.Has "example.com/v1" | quote }}
"""
CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
"""
FILES = {
    "charts/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "charts/web/values.yaml": ("replicas: 1\nimage: {tag: v1}\nname: none\nnote: ''\nconfig: ''\n"),
    "charts/web/templates/cm.yaml": CM,
    "charts/web/crds/widgets.yaml": CRD,
    "charts/web/values-dev.yaml": "replicas: 2\n",
    "values/prod.yaml": "replicas: 5\nimage: {tag: v5}\n",
    "config/app.conf": "listen 8080\n",
    "plain/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
}
CHART = "charts/web"


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, FILES)


def spec(helm: HelmOptions, *, app: str = "guestbook", path: str = CHART) -> RenderSpec:
    return RenderSpec(path, namespace="apps", helm=helm, app=app)


def template(rig: Rig, *flags: str, release: str = "guestbook") -> list[str]:
    """``helm template`` by hand, as Argo CD calls it."""
    chart = str(rig.work / CHART)
    return [str(helm_binary()), "template", release, chart, "--namespace", "apps", *flags]


def values_file(rig: Rig, name: str, text: str) -> str:
    path = rig.root / name
    path.write_text(text)
    return str(path)


def data(rendered: Any) -> dict[str, str]:
    (cm,) = [o for o in rendered.objects if o["kind"] == "ConfigMap"]
    result: dict[str, str] = cm["data"]
    return result


async def test_release_defaults_to_the_app_name(rig: Rig) -> None:
    got = await rig.render(spec(HelmOptions()))
    assert got == by_hand(template(rig, "--include-crds"))
    names = {o["metadata"]["name"] for o in got.objects if o["kind"] == "ConfigMap"}
    assert names == {"guestbook-cfg"}
    named = await rig.render(spec(HelmOptions(release="web")))
    assert named == by_hand(template(rig, "--include-crds", release="web"))


async def test_values_as_yaml_text_and_as_mapping(rig: Rig) -> None:
    text = "replicas: 4\nimage:\n  tag: v9\n"
    got = await rig.render(spec(HelmOptions(values=text)))
    assert got == by_hand(template(rig, "--include-crds", "--values", values_file(rig, "v", text)))
    assert (data(got)["replicas"], data(got)["tag"]) == ("4", "v9")
    mapping = await rig.render(spec(HelmOptions(values={"replicas": 4, "image": {"tag": "v9"}})))
    assert mapping == got


async def test_values_object_takes_the_place_of_values(rig: Rig) -> None:
    options = HelmOptions(values="replicas: 4\nname: text\n", values_object={"replicas": 9})
    got = await rig.render(spec(options))
    expected = template(rig, "--include-crds", "--values", values_file(rig, "o", "replicas: 9\n"))
    assert got == by_hand(expected)
    assert (data(got)["replicas"], data(got)["name"]) == ("9", "none")  # as Argo CD: no merge


async def test_precedence_parameters_values_object_values_value_files(rig: Rig) -> None:
    options = HelmOptions(
        value_files=("values-dev.yaml", "../../values/prod.yaml"),
        values_object={"replicas": 7, "image": {"tag": "v7"}, "name": "object"},
        parameters=(
            HelmParameter("replicas", "8"),
            HelmParameter("name", "0123", force_string=True),
            HelmParameter("note", "a,b"),
        ),
    )
    got = await rig.render(spec(options))
    inline = values_file(rig, "p", '{"replicas": 7, "image": {"tag": "v7"}, "name": "object"}')
    expected = template(
        rig,
        "--include-crds",
        "--values",
        str(rig.work / CHART / "values-dev.yaml"),
        "--values",
        str(rig.work / "values/prod.yaml"),
        "--values",
        inline,
        "--set",
        "replicas=8",
        "--set",
        "note=a\\,b",
        "--set-string",
        "name=0123",
    )
    assert got == by_hand(expected)
    picked = data(got)
    assert (picked["replicas"], picked["tag"], picked["name"], picked["note"]) == (
        "8",
        "v7",
        "0123",
        "a,b",
    )
    assert picked["kind"] == "string"


async def test_force_string_keeps_a_string(rig: Rig) -> None:
    plain = await rig.render(spec(HelmOptions(parameters=(HelmParameter("name", "true"),))))
    forced = await rig.render(
        spec(HelmOptions(parameters=(HelmParameter("name", "true", force_string=True),)))
    )
    assert data(plain)["kind"] == "bool" and data(forced)["kind"] == "string"
    assert forced == by_hand(template(rig, "--include-crds", "--set-string", "name=true"))


async def test_file_parameters_read_repository_files_only(rig: Rig) -> None:
    options = HelmOptions(file_parameters=(HelmFileParameter("config", "../../config/app.conf"),))
    got = await rig.render(spec(options))
    expected = template(
        rig, "--include-crds", "--set-file", f"config={rig.work / 'config/app.conf'}"
    )
    assert got == by_hand(expected)
    assert data(got)["config"] == "listen 8080\n"
    for path in ("../../../etc/passwd", "/etc/passwd", "../../config/none.conf"):
        bad = HelmOptions(file_parameters=(HelmFileParameter("config", path),))
        with pytest.raises(StalledError, match="fileParameters 'config'"):
            await rig.render(spec(bad))


async def test_ignore_missing_value_files(rig: Rig) -> None:
    names = ("values-missing.yaml", "../../values/prod.yaml")
    with pytest.raises(StalledError, match=r"'values-missing\.yaml'.*ignoreMissingValueFiles"):
        await rig.render(spec(HelmOptions(value_files=names)))
    got = await rig.render(spec(HelmOptions(value_files=names, ignore_missing_value_files=True)))
    expected = template(rig, "--include-crds", "--values", str(rig.work / "values/prod.yaml"))
    assert got == by_hand(expected) and data(got)["replicas"] == "5"


async def test_skip_crds_kube_version_and_api_versions(rig: Rig) -> None:
    assert any(
        o["kind"] == "CustomResourceDefinition"
        for o in (await rig.render(spec(HelmOptions()))).objects
    )
    options = HelmOptions(
        skip_crds=True, kube_version="1.29.0", api_versions=("example.com/v1", "apps/v1")
    )
    got = await rig.render(spec(options))
    expected = template(
        rig,
        "--skip-crds",
        "--kube-version",
        "1.29.0",
        "--api-versions",
        "example.com/v1",
        "--api-versions",
        "apps/v1",
    )
    assert got == by_hand(expected)
    assert [o["kind"] for o in got.objects] == ["ConfigMap"]
    assert (data(got)["kube"], data(got)["widgets"]) == ("v1.29.0", "true")


async def test_refused_fields_are_named(rig: Rig) -> None:
    cases = [
        (HelmOptions(pass_credentials=True), "spec.source.helm.passCredentials"),
        (HelmOptions(version="v2"), "spec.source.helm.version 'v2'"),
        (HelmOptions(value_files=("https://example.com/v.yaml",)), "is a URL"),
    ]
    for options, naming in cases:
        with pytest.raises(StalledError, match=re.escape(naming)):
            await rig.render(spec(options))
    for release in ("--post-renderer=/bin/sh", "Web", "a" * 54):
        with pytest.raises(StalledError, match=re.escape("spec.source.helm.releaseName")):
            await rig.render(spec(HelmOptions(release=release)))
    with pytest.raises(StalledError, match=re.escape("the app's name '-x'")):
        await rig.render(spec(HelmOptions(), app="-x"))
    dotted = await rig.render(spec(HelmOptions(), app="example.blue-green"))
    assert dotted == by_hand(template(rig, "--include-crds", release="example.blue-green"))
    with pytest.raises(StalledError, match=re.escape("spec.source.helm is set but path 'plain'")):
        await rig.render(spec(HelmOptions(), path="plain"))
    with pytest.raises(StalledError, match=re.escape("spec.source.plugin")):
        await rig.render(RenderSpec(CHART, plugin=True))


async def test_every_field_is_in_the_cache_key(rig: Rig) -> None:
    variants = [
        HelmOptions(),
        HelmOptions(release="other"),
        HelmOptions(values="replicas: 4\n"),
        HelmOptions(values={"replicas": 4}),
        HelmOptions(values_object={"replicas": 4}),
        HelmOptions(parameters=(HelmParameter("replicas", "4"),)),
        HelmOptions(parameters=(HelmParameter("replicas", "4", force_string=True),)),
        HelmOptions(file_parameters=(HelmFileParameter("config", "../../config/app.conf"),)),
        HelmOptions(value_files=("values-dev.yaml",)),
        HelmOptions(value_files=("values-dev.yaml", "nope.yaml"), ignore_missing_value_files=True),
        HelmOptions(skip_crds=True),
        HelmOptions(skip_tests=True),
        HelmOptions(namespace="other"),
        HelmOptions(kube_version="1.29.0"),
        HelmOptions(api_versions=("example.com/v1",)),
    ]
    keys = [await rig.key(spec(options)) for options in variants]
    assert len(set(keys)) == len(keys)
    assert await rig.key(spec(HelmOptions(), app="other")) != keys[0]
    assert await rig.key(spec(HelmOptions())) == keys[0]


def test_values_the_app_chooses_never_stand_alone_as_flags(tmp_path: Path) -> None:
    hostile = "--post-renderer=/bin/sh"
    options = HelmOptions(
        release="web",
        namespace=hostile,
        kube_version=hostile,
        api_versions=(hostile,),
        parameters=(HelmParameter(hostile, "1"), HelmParameter("a", hostile, force_string=True)),
        file_parameters=(HelmFileParameter(hostile, "f"),),
    )
    command = helm.template_command(
        Path("/bin/helm"),
        checkout=tmp_path,
        chart="chart",
        namespace="apps",
        options=options,
        inline_values=None,
    )
    assert not [arg for arg in command if arg.startswith("--post-renderer")]
    assert f"--kube-version={hostile}" in command and f"--set={hostile}=1" in command
