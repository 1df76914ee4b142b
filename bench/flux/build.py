"""Flux's source-controller and kustomize-controller, built from their Go modules like the kit.

Two tiny Go modules of ours under ``gomod/`` (one per controller, because each upstream module
carries ``replace`` lines of its own, which a dependant must repeat and which need not agree)
require the upstream module and name its ``main`` package (at the module root) in a ``tool``
line, so ``go.sum`` holds every package the build needs. Their ``go.mod`` files are the one place
the Flux version is pinned. :func:`ensure_controllers` hands them to the kit's own builder
(:func:`fleet.controlplane.binaries.ensure_group`, with ``root`` pointing here): a build lands in
``<cache>/controlplane/bin/<name>-<version>-<digest>/`` beside the control planes, once.

:func:`crd_documents` reads the CustomResourceDefinitions from the module cache (each upstream
module ships them under ``config/crd/bases``), after ``go mod download`` of the pinned version,
so the CRDs always match the binaries. Nothing here runs in ``make test``: the bench is optional.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from fleet.controlplane.binaries import BuildGroup, ensure_group, stderr_progress
from fleet.controlplane.errors import KitError

__all__ = ["CONTROLLERS", "GOMOD", "crd_documents", "default_cache_dir", "ensure_controllers"]

GOMOD = Path(__file__).parent / "gomod"

CONTROLLERS: dict[str, BuildGroup] = {
    name: BuildGroup(name, f"github.com/fluxcd/{name}", {name: f"github.com/fluxcd/{name}"}, GOMOD)
    for name in ("source-controller", "kustomize-controller")
}


def default_cache_dir() -> Path:
    """Where the kit caches its builds (``FLEET_CACHE_DIR``, else ``~/.cache/fleet``)."""
    return Path(os.environ.get("FLEET_CACHE_DIR") or Path.home() / ".cache" / "fleet")


def ensure_controllers(*, cache_dir: Path | None = None) -> dict[str, Path]:
    """Each controller's binary, by name, building what the cache lacks (minutes, once)."""
    cache = cache_dir or default_cache_dir()
    return {
        name: ensure_group(group, cache_dir=cache, progress=stderr_progress) / name
        for name, group in CONTROLLERS.items()
    }


def module_dir(group: BuildGroup) -> Path:
    """The upstream module's directory in the Go module cache (downloading it if needed)."""
    spec = f"{group.module}@{group.version()}"
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", spec],
            cwd=group.module_dir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=readonly"),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KitError(f"cannot run `go mod download {spec}`: {exc}") from exc
    if out.returncode != 0:
        raise KitError(f"`go mod download {spec}` failed: {out.stderr.strip()[-300:]}")
    return Path(json.loads(out.stdout)["Dir"])


def crd_documents() -> list[dict[str, Any]]:
    """Every CustomResourceDefinition both controllers ship, as plain dicts."""
    documents: list[dict[str, Any]] = []
    for group in CONTROLLERS.values():
        bases = module_dir(group) / "config" / "crd" / "bases"
        files = sorted(bases.glob("*.yaml"))
        if not files:
            raise KitError(f"{bases}: no CRDs in the module of {group.module} {group.version()}")
        for path in files:
            documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


if __name__ == "__main__":
    for binary in ensure_controllers().values():
        print(binary)
