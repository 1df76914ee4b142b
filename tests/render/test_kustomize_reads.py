"""What a kustomization reads, walked from a commit's files: each text is decoded once."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from fleet.errors import StalledError
from fleet.render import documents, kustomize
from fleet.render.documents import DocumentLimits


class Files:
    """A commit's tree as a mapping of path -> text (pure: what reads() asks of a snapshot)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    async def kind(self, path: str) -> Literal["tree", "blob"] | None:
        if path in self.files:
            return "blob"
        prefix = f"{path}/" if path else ""
        return "tree" if any(p.startswith(prefix) for p in self.files) else None

    async def kinds(self, paths: list[str]) -> dict[str, Literal["tree", "blob"] | None]:
        return {p: await self.kind(p) for p in paths}

    async def read(self, path: str) -> bytes:
        return self.files[path].encode()

    async def names(self, path: str) -> list[str]:
        prefix = f"{path}/" if path else ""
        return sorted({p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)})


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = documents.load_yaml

    def counting(data: bytes, *, source: str, limits: DocumentLimits) -> Any:
        seen.append(source)
        return real(data, source=source, limits=limits)

    monkeypatch.setattr(kustomize, "load_yaml", counting)
    kustomize._references.cache_clear()
    return seen


def tenant(name: str, base: str = "resources: [cm.yaml]\n") -> dict[str, str]:
    return {
        f"tenants/{name}/kustomization.yaml": f"namespace: t-{name}\nresources: [../_base]\n",
        "tenants/_base/kustomization.yaml": base,
        "tenants/_base/cm.yaml": "kind: ConfigMap\n",
    }


@pytest.mark.anyio
async def test_a_text_already_decoded_is_not_decoded_again(decoded: list[str]) -> None:
    limits = DocumentLimits()
    first = await kustomize.reads(Files(tenant("a")), "tenants/a", limits=limits)
    assert first == ["tenants/a", "tenants/_base"]
    assert sorted(decoded) == ["tenants/_base/kustomization.yaml", "tenants/a/kustomization.yaml"]
    # a new commit where only a resource changed, and a second tenant on the same base
    changed = {**tenant("a"), "tenants/_base/cm.yaml": "kind: ConfigMap\ndata: {}\n"}
    assert await kustomize.reads(Files(changed), "tenants/a", limits=limits) == first
    await kustomize.reads(Files(tenant("b")), "tenants/b", limits=limits)
    assert decoded.count("tenants/_base/kustomization.yaml") == 1
    assert decoded.count("tenants/b/kustomization.yaml") == 1
    # a changed text is decoded, and what it names now is followed
    grown = tenant("a", base="resources: [cm.yaml, ../../shared]\n")
    grown["shared/x.yaml"] = "kind: ConfigMap\n"
    walked = await kustomize.reads(Files(grown), "tenants/a", limits=limits)
    assert walked == ["tenants/a", "shared", "tenants/_base"]
    assert decoded.count("tenants/_base/kustomization.yaml") == 2


@pytest.mark.anyio
async def test_a_refused_text_is_refused_every_time(decoded: list[str]) -> None:
    files = Files({"app/kustomization.yaml": "helmCharts: [{name: x}]\n"})
    for _ in range(2):
        with pytest.raises(StalledError, match="helmCharts is not supported"):
            await kustomize.reads(files, "app", limits=DocumentLimits())
    assert decoded == ["app/kustomization.yaml"] * 2
