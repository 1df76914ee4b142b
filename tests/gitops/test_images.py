"""``IMAGE=NEW_REF`` as kustomize reads it, and edits that leave the rest of the file alone.

The rendering test runs the real ``kubectl kustomize`` over each edited kustomization and checks
the image written into the containers against what ``kustomize edit set image`` produces.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fleet.errors import ConfigError
from fleet.gitops import images, kustomization
from fleet.gitops.images import ImageChange

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("app=registry/app:1.2", ImageChange("app", "registry/app", "1.2", "")),
        ("app=registry/app@" + D1, ImageChange("app", "registry/app", "", D1)),
        ("app=registry/app:1.2@" + D1, ImageChange("app", "registry/app", "1.2", D1)),
        ("app=registry/app", ImageChange("app", "registry/app", "", "")),
        ("app:1.2", ImageChange("app", "", "1.2", "")),
        ("app@" + D1, ImageChange("app", "", "", D1)),
        ("app=localhost:5000/app", ImageChange("app", "localhost:5000/app", "", "")),
        ("app=localhost:5000/app:v2", ImageChange("app", "localhost:5000/app", "v2", "")),
        ("app=*:1.3", ImageChange("app", "*", "1.3", "")),
        ("ghcr.io/org/app:abc123", ImageChange("ghcr.io/org/app", "", "abc123", "")),
    ],
)
def test_parse_follows_kustomize(arg: str, expected: ImageChange) -> None:
    assert images.parse(arg) == expected


@pytest.mark.parametrize("arg", ["", "app", "a=b=c", "=x:1", "app=", "app@", "app x:1", "app=@d"])
def test_parse_refuses_malformed(arg: str) -> None:
    with pytest.raises(ConfigError, match="image"):
        images.parse(arg)


def test_merge_replaces_and_star_keeps() -> None:
    old = {"name": "app", "newName": "reg/app", "newTag": "1.0", "digest": D1}
    assert images.merged(images.parse("app:1.1"), old) == {"newTag": "1.1"}
    assert images.merged(images.parse("app=*:1.1"), old) == {"newName": "reg/app", "newTag": "1.1"}
    assert images.merged(images.parse("app=x/y@" + D2), old) == {"newName": "x/y", "digest": D2}
    assert images.merged(images.parse("app=*:*@" + D2), old) == {
        "newName": "reg/app",
        "newTag": "1.0",
        "digest": D2,
    }


def _write(directory: Path, text: str, name: str = "kustomization.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory / name


STYLED = """\
# Top comment, kept.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
commonLabels:
  team: web   # two-space mapping
resources:
- deployment.yaml
images:
  - name: app   # comment on the entry
    newName: 'registry.example.com/app'
    newTag: "1.0"
  # a comment between entries
  - name: worker
    newTag: 2.0
patches:
    - path: patch.yaml      # four-space sequence, unusual but valid
      target: {kind: Deployment, name: web}
namespace: prod   # trailing comment
"""


def test_edit_changes_only_the_image_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, STYLED)
    found, edits = kustomization.set_images(tmp_path, [images.parse("app=reg/app:1.1")])
    assert found == path
    assert edits[0].before == {"newName": "registry.example.com/app", "newTag": "1.0"}
    assert edits[0].after == {"newName": "reg/app", "newTag": "1.1"}
    expected = STYLED.replace("'registry.example.com/app'", "'reg/app'").replace('"1.0"', '"1.1"')
    assert path.read_text() == expected  # byte for byte: quoting, comments, order, indentation


def test_tag_only_follows_kustomize_and_numbers_stay_strings(tmp_path: Path) -> None:
    path = _write(tmp_path, STYLED)
    kustomization.set_images(tmp_path, [images.parse("app:1.5"), images.parse("worker:3.0")])
    data = yaml.safe_load(path.read_text())
    assert data["images"] == [{"name": "app", "newTag": "1.5"}, {"name": "worker", "newTag": "3.0"}]
    assert "# a comment between entries" in path.read_text()


def test_unchanged_is_not_rewritten(tmp_path: Path) -> None:
    path = _write(tmp_path, STYLED)
    before = path.stat().st_mtime_ns
    _, edits = kustomization.set_images(tmp_path, [images.parse("worker:2.0")])
    assert not edits[0].changed
    assert path.read_text() == STYLED and path.stat().st_mtime_ns == before


def test_unknown_image_names_file_and_image_unless_add(tmp_path: Path) -> None:
    path = _write(tmp_path, STYLED)
    with pytest.raises(ConfigError) as caught:
        kustomization.set_images(tmp_path, [images.parse("nginx:1.27")])
    assert str(path) in str(caught.value) and "'nginx'" in str(caught.value)
    assert "--add" in str(caught.value)
    assert path.read_text() == STYLED
    _, edits = kustomization.set_images(tmp_path, [images.parse("nginx:1.27")], add=True)
    assert edits[0].added
    assert path.read_text().startswith(STYLED.split("patches:", maxsplit=1)[0])
    assert yaml.safe_load(path.read_text())["images"][-1] == {"name": "nginx", "newTag": "1.27"}


def test_add_creates_images_block(tmp_path: Path) -> None:
    text = "resources:\n  - a.yaml\n# end\n"
    path = _write(tmp_path, text, name="kustomization.yml")
    kustomization.set_images(tmp_path, [images.parse("app=r/app:2")], add=True)
    assert path.read_text().startswith(text)
    assert yaml.safe_load(path.read_text())["images"] == [
        {"name": "app", "newName": "r/app", "newTag": "2"}
    ]


def test_file_names_and_ambiguity(tmp_path: Path) -> None:
    _write(tmp_path / "k", "images:\n- name: app\n  newTag: '1'\n", name="Kustomization")
    assert kustomization.find(tmp_path / "k").name == "Kustomization"
    _write(tmp_path / "k", "resources: []\n", name="kustomization.yaml")
    with pytest.raises(ConfigError, match="several kustomization files"):
        kustomization.find(tmp_path / "k")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no kustomization file"):
        kustomization.find(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no such directory"):
        kustomization.find(tmp_path / "missing")


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    _write(tmp_path, "images: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        kustomization.set_images(tmp_path, [images.parse("app:1")])


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: bare, image: app}
        - {name: tagged, image: "app:0.9"}
        - {name: pinned, image: "app@DIGEST"}
""".replace("DIGEST", D1)

# (the entry before, the argument, what kustomize renders for app / app:0.9 / app@D1 after)
RENDER_CASES: list[tuple[dict[str, str] | None, str, list[str]]] = [
    ({"newTag": "0.1"}, "app=registry/app:1.2", ["registry/app:1.2"] * 3),
    ({"newTag": "0.1"}, f"app=registry/app@{D2}", [f"registry/app@{D2}"] * 3),
    ({"newName": "other/app"}, "app:1.2", ["app:1.2"] * 3),  # replaces: newName dropped
    ({"newName": "other/app"}, "app=*:1.2", ["other/app:1.2"] * 3),
    ({"newTag": "0.1"}, f"app@{D2}", [f"app@{D2}"] * 3),
    ({"newTag": "0.1"}, "app=r/app", ["r/app", "r/app:0.9", f"r/app@{D1}"]),
    ({"digest": D1}, f"app=r/app:1.2@{D2}", [f"r/app:1.2@{D2}"] * 3),
    (None, "app=registry/app:3", ["registry/app:3"] * 3),  # with --add
]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize inside)")
@pytest.mark.parametrize(("entry", "arg", "expected"), RENDER_CASES)
def test_rendered_by_real_kustomize(
    tmp_path: Path, entry: dict[str, str] | None, arg: str, expected: list[str]
) -> None:
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    text = "resources:\n  - deployment.yaml\n"
    if entry is not None:
        text += "images:\n  - name: app\n" + "".join(f"    {k}: '{v}'\n" for k, v in entry.items())
    _write(tmp_path, text)
    _, edits = kustomization.set_images(tmp_path, [images.parse(arg)], add=entry is None)
    out = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    containers = yaml.safe_load(out)["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == expected
    originals = ["app", "app:0.9", f"app@{D1}"]
    assert [images.rendered(o, edits[0].after) for o in originals] == expected
