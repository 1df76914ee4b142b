"""Argo CD's directory source: the top directory unless ``recurse``, ``include`` / ``exclude``
globs on the path relative to the app (``*`` crosses ``/``, ``{a,b}``), other people's YAML
skipped, jsonnet and nested kustomize or Helm files refused by name, ``generateName`` objects
passed through, and every option in the cache key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from fleet.errors import StalledError
from fleet.render import (
    DirectoryOptions,
    JsonnetOptions,
    JsonnetVar,
    RenderSpec,
    generated_name,
    globs,
    jsonnet,
)
from fleet.types import RenderedSet
from tests.render.argokit import Rig

pytestmark = pytest.mark.anyio


def cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"


FILES = {
    "site/a.yaml": cm("a"),
    "site/b.yml": cm("b"),
    "site/c.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}',
    "site/config.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}',
    "site/values.yaml": "replicas: 3\nimage: {tag: v1}\n",  # someone else's YAML: skipped
    "site/README.md": "not a manifest\n",
    "site/sub/d.yaml": cm("d"),
    "site/sub/deeper/e.yaml": cm("e"),
    "site/env-usw2/f.yaml": cm("f"),
    "site/.hidden/g.yaml": cm("g"),
    "mixed/a.yaml": cm("a"),
    "mixed/kust/kustomization.yaml": "resources: [x.yaml]\n",
    "mixed/kust/x.yaml": cm("x"),
    "mixed/chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    "net/a.yaml": cm("a"),
    "net/app.jsonnet": "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'j'}}\n",
    "net/lib/sub.jsonnet": "{}\n",
    "hooks/job.yaml": (
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n"
        "  annotations: {argocd.argoproj.io/hook: PreSync}\n"
        "spec: {template: {spec: {restartPolicy: Never,\n"
        "  containers: [{name: m, image: busybox}]}}}\n"
    ),
    "jn/main.jsonnet": (
        "local k = import 'k.libsonnet';\nlocal util = import 'util.libsonnet';\n"
        "[k.cm('env-' + std.extVar('env'),"
        " {count: std.toString(std.extVar('count')), hello: util.hello}),\n"
        " {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'second'}}]\n"
    ),
    "jn/util.libsonnet": "{hello: 'world'}\n",
    "jn/sub/tla.jsonnet": (
        "function(tier, size) {apiVersion: 'v1', kind: 'ConfigMap',"
        " metadata: {name: 'tla-' + tier}, data: {size: std.toString(size * 2)}}\n"
    ),
    "vendor/lib/k.libsonnet": (
        "{cm(name, data): {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: name},"
        " data: data}}\n"
    ),
    "jnbad/abs/x.jsonnet": "{data: importstr '/etc/hostname'}\n",
    "jnbad/up/x.jsonnet": "{data: importstr '../../../../../../../../../../etc/hostname'}\n",
    "jnbad/outside/x.jsonnet": "import '../../vendor/lib/k.libsonnet'\n",
    "broken/x.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n",
    "kust/kustomization.yaml": "resources: []\n",
}


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, FILES)


def names(rendered: RenderedSet) -> list[str]:
    return sorted(
        o["metadata"].get("name") or o["metadata"]["generateName"] for o in rendered.objects
    )


async def directory(rig: Rig, path: str = "site", **options: object) -> list[str]:
    return names(await rig.render(RenderSpec(path, directory=DirectoryOptions(**options))))  # type: ignore[arg-type]


async def test_top_directory_only_unless_recurse(rig: Rig) -> None:
    assert await directory(rig) == ["a", "b", "c", "config"]
    assert await directory(rig, recurse=True) == ["a", "b", "c", "config", "d", "e", "f", "g"]
    # without directory options a path renders as fleet's plain manifests: recursive, no dotdirs,
    # and someone else's YAML is an error rather than skipped
    with pytest.raises(StalledError, match=re.escape("site/values.yaml")):
        await rig.render(RenderSpec("site"))


async def test_include_and_exclude_globs(rig: Rig) -> None:
    assert await directory(rig, recurse=True, include="{config.json,env-usw2/*}") == ["config", "f"]
    assert await directory(rig, recurse=True, exclude="sub/*") == [
        "a",
        "b",
        "c",
        "config",
        "f",
        "g",
    ]
    assert await directory(rig, recurse=True, include="*.yaml", exclude="{.hidden,env-*}/*") == [
        "a",
        "d",
        "e",
    ]
    assert await directory(rig, include="*.json") == ["c", "config"]
    assert await directory(rig, include="[ab].y*ml") == ["a", "b"]
    assert await directory(rig, exclude="[!a]*") == ["a"]
    with pytest.raises(StalledError, match=re.escape("spec.source.directory.include")):
        await directory(rig, include="{a.yaml")


def test_glob_semantics() -> None:
    field = "spec.source.directory.include"
    cases = [
        ("*.yaml", "a.yaml", True),
        ("*.yaml", "sub/a.yaml", True),  # '*' crosses '/', as Argo CD's glob without separators
        ("sub/*", "sub/deeper/e.yaml", True),
        ("{a,b/{c,d}}.yaml", "b/d.yaml", True),
        ("{a,b/{c,d}}.yaml", "b/e.yaml", False),
        ("?.yaml", "ab.yaml", False),
        ("[a-c].yaml", "b.yaml", True),
        ("[^a-c].yaml", "b.yaml", False),
        ("a\\*.yaml", "a*.yaml", True),
        ("a\\*.yaml", "ab.yaml", False),
        ("a.yaml", "xa.yaml", False),  # the whole path must match
        ("a,b", "a,b", True),  # a comma outside braces is literal
    ]
    for pattern, path, expected in cases:
        assert globs.matches(pattern, path, field=field) is expected, (pattern, path)
    with pytest.raises(StalledError, match="unclosed"):
        globs.matches("[ab", "a", field=field)


async def test_jsonnet_with_ext_vars_tlas_and_libs(rig: Rig) -> None:
    options = JsonnetOptions(
        ext_vars=(JsonnetVar("env", "prod"), JsonnetVar("count", "2 + 1", code=True)),
        tlas=(JsonnetVar("tier", "front"), JsonnetVar("size", "21", code=True)),
        libs=("vendor/lib",),
    )
    got = await rig.render(
        RenderSpec("jn", directory=DirectoryOptions(recurse=True, jsonnet=options))
    )
    assert sorted(got.objects, key=lambda o: o["metadata"]["name"]) == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "env-prod"},
            "data": {"count": "3", "hello": "world"},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "tla-front"},
            "data": {"size": "42"},
        },
    ]
    keys = {
        await rig.key(RenderSpec("jn", directory=DirectoryOptions(recurse=True, jsonnet=o)))
        for o in (options, dataclasses.replace(options, ext_vars=(JsonnetVar("env", "dev"),)))
    }
    assert len(keys) == 2
    with pytest.raises(StalledError, match=re.escape("jsonnet.libs 'vendor/none'")):
        await rig.render(
            RenderSpec(
                "jn", directory=DirectoryOptions(jsonnet=JsonnetOptions(libs=("vendor/none",)))
            )
        )


async def test_jsonnet_imports_stay_in_the_checkout(rig: Rig) -> None:
    for path, naming in (
        ("jnbad/abs", "an absolute path is refused"),
        ("jnbad/up", "escapes the repository"),
        ("jnbad/outside", "not found beside the importing file"),  # not a lib: not extracted
    ):
        with pytest.raises(StalledError, match=re.escape(naming)) as caught:
            await directory(rig, path)
        assert f"path '{path}/x.jsonnet'" in str(caught.value)
        assert str(rig.root) not in str(caught.value)  # repository paths only


async def test_jsonnet_without_the_bindings_is_refused_by_name(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonnet, "available", lambda: False)
    with pytest.raises(StalledError, match=re.escape("path 'net/app.jsonnet' is a jsonnet file")):
        await directory(rig, "net")
    assert await directory(rig, "net", exclude="*.jsonnet") == ["a"]
    with pytest.raises(StalledError, match=re.escape("net/lib/sub.jsonnet")):
        await directory(rig, "net", recurse=True, exclude="app.jsonnet")
    options = JsonnetOptions(ext_vars=(JsonnetVar("env", "prod"),))
    with pytest.raises(StalledError, match=re.escape("spec.source.directory.jsonnet")):
        await directory(rig, "net", exclude="*.jsonnet", jsonnet=options)


async def test_plain_manifests_never_render_jsonnet_to_nothing(rig: Rig) -> None:
    with pytest.raises(StalledError, match=re.escape("'net/app.jsonnet' is a jsonnet file")):
        await rig.render(RenderSpec("net"))  # fleet's own plain manifests: refused by name


async def test_nested_kustomize_and_helm_files_are_refused(rig: Rig) -> None:
    assert await directory(rig, "mixed") == ["a"]  # not read without recurse
    with pytest.raises(StalledError, match=re.escape("'mixed/chart/Chart.yaml' is a Helm chart")):
        await directory(rig, "mixed", recurse=True)
    with pytest.raises(StalledError, match=re.escape("'mixed/kust/kustomization.yaml'")):
        await directory(rig, "mixed", recurse=True, exclude="chart/*")
    assert await directory(rig, "mixed", recurse=True, exclude="{chart,kust}/*") == ["a"]
    with pytest.raises(
        StalledError, match=re.escape("spec.source.directory is set but path 'kust'")
    ):
        await directory(rig, "kust", recurse=True)


async def test_generate_name_objects_pass_through(rig: Rig) -> None:
    for spec in (RenderSpec("hooks"), RenderSpec("hooks", directory=DirectoryOptions())):
        (job,) = (await rig.render(spec)).objects
        assert generated_name(job) == "migrate-" and "name" not in job["metadata"]
    with pytest.raises(StalledError, match=re.escape("broken/x.yaml")):
        await directory(rig, "broken")  # looks like a manifest: an error, not skipped


async def test_every_option_is_in_the_cache_key(rig: Rig) -> None:
    variants = [
        None,
        DirectoryOptions(),
        DirectoryOptions(recurse=True),
        DirectoryOptions(include="*.yaml"),
        DirectoryOptions(exclude="*.yaml"),
    ]
    keys = [await rig.key(RenderSpec("site", directory=options)) for options in variants]
    assert len(set(keys)) == len(keys)
