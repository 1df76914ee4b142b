"""The batch kustomize renderer (krender): the same objects as the CLI, errors as the CLI's, and a
process that comes back after a crash or a cancelled render.

Real binaries throughout: krender built from its Go module by the kit's builder, and kubectl's
embedded kustomize as the CLI it must agree with.
"""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
from pathlib import Path

import anyio
import pytest

from fleet.controlplane.binaries import ensure_tool
from fleet.errors import StalledError, TransientError
from fleet.render import DocumentLimits, Renderer, RenderSettings, parse_documents
from fleet.render.documents import objects_of
from fleet.render.krender import documents_of
from fleet.render.kustomize import Builder
from fleet.render.tools import tool_env
from fleet.settings import default_cache_dir
from fleet.types import Manifest
from tests.hub.hubkit import until

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def krender_binary() -> Path:
    return ensure_tool("krender", cache_dir=default_cache_dir())


@pytest.fixture(scope="module")
def kubectl() -> Path:
    found = shutil.which("kubectl") or shutil.which("kustomize")
    if found is None:
        pytest.skip("neither kubectl nor kustomize is on PATH: nothing to compare krender with")
    return Path(found)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


DEPLOYMENT = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, labels: {app: web}}
    spec:
      replicas: 1
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
          - {name: web, image: nginx:1.25, ports: [{containerPort: 80}]}
    """

TREE = {
    "base/kustomization.yaml": """\
        resources: [deploy.yaml, svc.yaml]
        configMapGenerator:
        - name: settings
          files: [app.properties]
          literals: [MODE=base]
        """,
    "base/deploy.yaml": DEPLOYMENT,
    "base/svc.yaml": """\
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {selector: {app: web}, ports: [{port: 80}]}
        """,
    "base/app.properties": "color=blue\nsize=3\n",
    "components/monitor/kustomization.yaml": """\
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        commonAnnotations: {monitored: "yes"}
        """,
    "tenants/a/kustomization.yaml": """\
        resources: [../../base, ns.yaml]
        namespace: tenant-a
        namePrefix: a-
        labels:
        - pairs: {tenant: a}
          includeSelectors: false
        images:
        - {name: nginx, newTag: "1.27"}
        replicas:
        - {name: web, count: 3}
        components: [../../components/monitor]
        patches:
        - path: probe.yaml
        - target: {kind: Service, name: web}
          patch: |-
            - op: replace
              path: /spec/ports/0/port
              value: 8080
        secretGenerator:
        - name: token
          literals: [token=abc]
        """,
    "tenants/a/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: tenant-a}\n",
    "tenants/a/probe.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          template:
            spec:
              containers:
              - name: web
                readinessProbe: {httpGet: {path: /healthz, port: 80}}
        """,
    "tenants/b/kustomization.yaml": """\
        resources: [../../base]
        namespace: tenant-b
        nameSuffix: -b
        commonLabels: {tenant: b}
        sortOptions: {order: fifo}
        configMapGenerator:
        - name: settings
          behavior: merge
          literals: [MODE=b]
        """,
    "plain/kustomization.yml": "resources: [deploy.yaml]\n",
    "plain/deploy.yaml": DEPLOYMENT,
}
BUILDS = ["base", "tenants/a", "tenants/b", "plain"]

# values whose type a decoder may get wrong: strings that look like numbers, booleans, nulls or
# dates, next to real ints, floats and booleans (kept by a CRD's free-form spec)
TRICKY = {
    "tricky/kustomization.yaml": """\
        resources: [cm.yaml, thing.yaml]
        commonAnnotations: {count: "3", enabled: "true"}
        configMapGenerator:
        - name: gen
          literals: [port=8080, flag=yes, empty=, ratio=1.50]
        """,
    "tricky/cm.yaml": """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: strings}
        data:
          int: "1"
          float: "1.0"
          exp: "1e3"
          octal: "0755"
          hex: "0x1F"
          "yes": "yes"
          "on": "on"
          "true": "true"
          "null": "null"
          tilde: "~"
          date: "2024-01-01"
          base60: "1:20"
          empty: ""
          multiline: |
            line one
            line "two": 3
          unicode: "héllo ✓ <&>"
        """,
    "tricky/thing.yaml": """\
        apiVersion: example.com/v1
        kind: Thing
        metadata: {name: numbers}
        spec:
          int: 1
          zero: 0
          negative: -7
          big: 9007199254740993
          float: 1.5
          whole: 2.0
          flag: true
          off: false
          nothing: null
          list: [1, "1", true, "true", 1.25]
          nested: {a: {b: [{}, [], ""]}}
        """,
}


def _objects(out: bytes, source: str) -> list[Manifest]:
    return parse_documents(out, source=source, limits=DocumentLimits())


async def test_krender_builds_the_same_objects_as_the_cli(
    tmp_path: Path, krender_binary: Path, kubectl: Path
) -> None:
    """Every kustomization of the tree (bases, overlays, components, generators, patches,
    images, replicas, sort options) gives krender the objects, in the order, the CLI gives; the
    batch renders all of them at once, twice, over one process."""
    checkout = tmp_path / "repo"
    _write(checkout, TREE)
    env = tool_env(tmp_path / "home")
    cli = Builder(binary=kubectl)
    batch = Builder(batch=krender_binary, jobs=4)
    assert batch.batch is not None and cli.batch is None
    expected = {path: _objects(await cli.build(checkout, path, env=env), path) for path in BUILDS}
    got: dict[str, list[bytes]] = {path: [] for path in BUILDS}

    async def one(path: str) -> None:
        got[path].append(await batch.build(checkout, path, env=env))

    try:
        async with anyio.create_task_group() as group:
            for path in BUILDS * 2:
                group.start_soon(one, path)
        for path in BUILDS:
            assert len(got[path]) == 2
            for out in got[path]:
                assert _objects(out, path) == expected[path], path
        assert batch.batch.starts == 1 and batch.batch.renders == 2 * len(BUILDS)
        names = [o["metadata"]["name"] for o in expected["tenants/a"]]
        assert "a-web" in names and any(n.startswith("a-settings-") for n in names)
        version = await batch.version()
        assert version.startswith("krender sigs.k8s.io/kustomize/api v"), version
    finally:
        await batch.aclose()


async def test_krender_answers_json_with_the_objects_of_its_yaml_answer(
    tmp_path: Path, krender_binary: Path, kubectl: Path
) -> None:
    """Asked for JSON (what the engine asks), krender answers JSON objects, not YAML, and they
    are the objects of its YAML answer and of the CLI, in the same order: ints stay ints, strings
    that look like numbers, booleans, nulls or dates stay strings, whatever the key order."""
    checkout = tmp_path / "repo"
    _write(checkout, {**TREE, **TRICKY})
    env = tool_env(tmp_path / "home")
    cli = Builder(binary=kubectl)
    batch = Builder(batch=krender_binary, jobs=4)
    assert batch.batch is not None
    limits = DocumentLimits()
    try:
        for path in [*BUILDS, "tricky"]:
            expected = _objects(await cli.build(checkout, path, env=env), path)
            as_yaml = _objects(await batch.build(checkout, path, env=env), path)
            docs = await batch.documents(checkout, path, env=env, limits=limits)
            as_json = objects_of(docs, source=path)
            assert as_json == as_yaml == expected, path
            assert [o["kind"] for o in as_json] == [o["kind"] for o in expected], path
        assert batch.batch.yaml_decoded == 0  # every documents() answer came as JSON
        by_name = {o["metadata"]["name"]: o for o in as_json}
        data = by_name["strings"]["data"]
        assert all(isinstance(v, str) for v in data.values()), data
        assert data["int"] == "1" and data["yes"] == "yes" and data["date"] == "2024-01-01"
        assert data["multiline"] == 'line one\nline "two": 3\n'
        spec = by_name["numbers"]["spec"]
        assert spec["int"] == 1 and type(spec["int"]) is int
        assert spec["big"] == 9007199254740993 and type(spec["big"]) is int
        assert spec["float"] == 1.5 and spec["flag"] is True and spec["nothing"] is None
        assert spec["list"] == [1, "1", True, "true", 1.25]
        assert [type(v) for v in spec["list"]] == [int, str, bool, str, float]
        assert by_name["strings"]["metadata"]["annotations"]["count"] == "3"
        generated = next(o for n, o in by_name.items() if n.startswith("gen-"))
        assert generated["data"] == {"port": "8080", "flag": "yes", "empty": "", "ratio": "1.50"}
    finally:
        await batch.aclose()


async def test_a_yaml_answer_decodes_to_the_objects_of_the_json_answer(
    tmp_path: Path, krender_binary: Path
) -> None:
    """A krender built before the JSON answer ignores the format and answers YAML: the client
    decodes that answer (krender's real YAML, the branch the old build runs) to the objects of the
    JSON answer; an answer with neither is no objects."""
    checkout = tmp_path / "repo"
    _write(checkout, {**TREE, **TRICKY})
    batch = Builder(batch=krender_binary).batch
    assert batch is not None
    limits = DocumentLimits()
    try:
        for path in ["tenants/a", "tricky"]:
            yaml = await batch.build(checkout / path, root=checkout)
            as_json = await batch.documents(checkout / path, root=checkout, limits=limits)
            as_yaml = documents_of({"id": 1, "yaml": yaml.decode()}, source=path, limits=limits)
            assert as_yaml == as_json and as_json, path
        assert documents_of({"id": 1}, source="empty", limits=limits) == []
        with pytest.raises(StalledError, match="tricky"):  # the YAML limits still hold
            documents_of(
                {"id": 1, "yaml": yaml.decode()}, source="tricky", limits=DocumentLimits(10, 10)
            )
    finally:
        await batch.aclose()


REFUSED = {  # kustomizations every build refuses: a missing resource, a file outside the root
    "outside.yaml": DEPLOYMENT,
    "missing/kustomization.yaml": "resources: [nothere.yaml]\n",
    "escape/kustomization.yaml": "resources: [../outside.yaml]\n",
}


async def test_krender_refuses_what_the_cli_refuses(
    tmp_path: Path, krender_binary: Path, kubectl: Path
) -> None:
    """A missing resource and a patch file outside the kustomization's directory (the root-only
    load restrictor) fail both ways, as a StalledError; krender's message names the path in the
    repository, not the hub's checkout directory."""
    checkout = tmp_path / "repo"
    _write(checkout, REFUSED)
    env = tool_env(tmp_path / "home")
    cli = Builder(binary=kubectl)
    batch = Builder(batch=krender_binary)
    try:
        for path in ("missing", "escape"):
            with pytest.raises(StalledError, match="kustomize failed"):
                await cli.build(checkout, path, env=env)
            with pytest.raises(StalledError, match="kustomize failed") as caught:
                await batch.build(checkout, path, env=env)
            assert str(checkout) not in str(caught.value)
        with pytest.raises(StalledError, match=r"nothere\.yaml"):
            await batch.build(checkout, "missing", env=env)
        # the process survives a kustomization's error
        assert batch.batch is not None and batch.batch.starts == 1
    finally:
        await batch.aclose()


async def test_krender_comes_back_after_a_crash_and_a_cancelled_render(
    tmp_path: Path, krender_binary: Path
) -> None:
    """A killed process fails its renders as transient and the next render starts a new one; a
    render cancelled by its caller's timeout takes the process down with it (a hung render must
    not hold a slot for ever), and the next render works again."""
    checkout = tmp_path / "repo"
    _write(checkout, TREE)
    env = tool_env(tmp_path / "home")
    builder = Builder(batch=krender_binary)
    batch = builder.batch
    assert batch is not None
    try:
        await builder.build(checkout, "base", env=env)
        worker = batch._worker
        assert worker is not None
        os.killpg(worker.process.pid, signal.SIGKILL)
        await worker.process.wait()
        out = await builder.build(checkout, "tenants/a", env=env)
        assert batch.starts == 2 and _objects(out, "a")
        worker = batch._worker
        assert worker is not None
        # the answer cannot be read while the test holds the read lock: the render is in flight
        async with anyio.create_task_group() as group, worker.read_lock:
            group.start_soon(lambda: builder.build(checkout, "base", env=env))
            await until(lambda: bool(worker.pending))
            group.cancel_scope.cancel()
        assert batch._worker is None and worker.broken  # stopped with the cancelled render
        with anyio.fail_after(30):
            await worker.process.wait()
        out = await builder.build(checkout, "base", env=env)
        assert batch.starts == 3 and _objects(out, "base")
    finally:
        await builder.aclose()


async def test_krender_fails_pending_renders_when_it_dies(
    tmp_path: Path, krender_binary: Path
) -> None:
    """Renders in flight when the process dies fail as TransientError (retried later), never
    hang."""
    checkout = tmp_path / "repo"
    _write(checkout, TREE)
    builder = Builder(batch=krender_binary, jobs=1)
    batch = builder.batch
    assert batch is not None
    await builder.build(checkout, "base", env={})
    worker = batch._worker
    assert worker is not None
    errors: list[BaseException] = []

    async def one() -> None:
        try:
            await builder.build(checkout, "tenants/a", env={})
        except TransientError as exc:
            errors.append(exc)

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(one)
                await until(lambda: len(worker.pending) > 1)
                os.killpg(worker.process.pid, signal.SIGKILL)
        assert errors, "no render was in flight when the process died"
        assert all("krender exited" in str(e) for e in errors)
    finally:
        await builder.aclose()


async def test_the_renderer_uses_krender_when_it_is_built(
    monkeypatch: pytest.MonkeyPatch, krender_binary: Path
) -> None:
    """With krender in the kit's cache (or $FLEET_KRENDER) and no CLI named, the engine's
    kustomize renders go through it and its version enters the cache key; naming a CLI keeps
    the CLI."""
    monkeypatch.setenv("FLEET_KRENDER", str(krender_binary))
    renderer = Renderer(RenderSettings())
    assert (await renderer.version("kustomize")).startswith("kustomize krender ")
    kubectl = shutil.which("kubectl")
    if kubectl:
        named = Renderer(RenderSettings(kustomize=Path(kubectl)))
        assert (await named.version("kustomize")).startswith("kustomize kubectl ")


def _files(root: Path) -> dict[str, str]:
    """Every file under `root` by repository path (what the hub sends krender from a commit)."""
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


async def test_krender_builds_from_files_in_memory_what_it_builds_from_the_disk(
    tmp_path: Path, krender_binary: Path
) -> None:
    """The files of a commit sent in the request (no checkout) give the objects, in the order,
    that a checkout of them on disk gives, for every kustomization of the tree; the refusals of
    the disk (a missing resource, a patch outside the kustomization's directory, a reference that
    climbs out of the repository) are refusals in memory too, naming repository paths; a file
    name that leaves the repository and a directory not among the files are refused; nothing of
    the disk around the files is read."""
    checkout = tmp_path / "repo"
    _write(
        checkout,
        {
            **TREE,
            **TRICKY,
            **REFUSED,
            "climb/kustomization.yaml": f"resources: [{'../' * 12}{tmp_path}/secret.yaml]\n",
        },
    )
    (tmp_path / "secret.yaml").write_text(DEPLOYMENT)  # on the disk, not among the files
    files = _files(checkout)
    batch = Builder(batch=krender_binary, jobs=4).batch
    assert batch is not None and await batch.takes_files()
    limits = DocumentLimits()
    try:
        for path in [*BUILDS, "tricky"]:
            on_disk = await batch.documents(checkout / path, root=checkout, limits=limits)
            in_memory = await batch.documents_of_files(files, path, limits=limits)
            assert in_memory == on_disk and in_memory, path
        for path, naming in [
            ("missing", r"'missing/nothere\.yaml' doesn't exist"),
            ("escape", "not in or below 'escape'"),
            ("climb", "secret.yaml' doesn't exist"),
        ]:
            with pytest.raises(StalledError, match="kustomize failed") as caught:
                await batch.documents_of_files(files, path, limits=limits)
            assert caught.match(naming), caught.value
            assert "/repo/" not in str(caught.value)
        with pytest.raises(StalledError, match="not a clean repository-relative path"):
            await batch.documents_of_files({"../x/kustomization.yaml": ""}, "x", limits=limits)
        with pytest.raises(StalledError, match="not among the request's files"):
            await batch.documents_of_files(files, "nowhere", limits=limits)
        assert batch.starts == 1 and batch.from_files == len(BUILDS) + 1  # the built ones
    finally:
        await batch.aclose()


async def test_a_burst_of_renders_shares_one_write_and_each_gets_its_own_answer(
    krender_binary: Path,
) -> None:
    """Fifty tenants asking in one turn of the event loop (a commit's wave): their requests go to
    krender in a few writes, not fifty, and each answer reaches the caller who asked for it."""
    batch = Builder(batch=krender_binary, jobs=4).batch
    assert batch is not None and await batch.takes_files()
    limits = DocumentLimits()

    def tenant(i: int) -> dict[str, str]:
        return {
            f"t{i}/kustomization.yaml": "resources: [cm.yaml]\n",
            f"t{i}/cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: t{i}}}\n",
        }

    found: dict[int, list[Manifest]] = {}

    async def render(i: int) -> None:
        found[i] = await batch.documents_of_files(tenant(i), f"t{i}", limits=limits)

    try:
        await render(-1)  # the process is running: the burst does not wait for its start
        before = batch.writes
        async with anyio.create_task_group() as group:
            for i in range(50):
                group.start_soon(render, i)
        assert all(found[i][0]["metadata"]["name"] == f"t{i}" for i in range(50))
        assert batch.writes - before < 10, batch.writes - before
    finally:
        await batch.aclose()
