"""Pinned control-plane binaries, built from Go modules once and cached by version.

Small Go modules of ours live in ``gomod/``: ``kube`` requires ``k8s.io/kubernetes`` (with a
``replace`` line per staging module) and builds kube-apiserver, kube-controller-manager and
kube-scheduler; ``etcd`` wraps ``go.etcd.io/etcd/server/v3``; ``kwok`` builds the fake-node
controller; ``helm`` builds the helm CLI for rendering charts where no helm is installed;
``krender`` is our batch kustomize renderer (:mod:`fleet.render.krender`), pinned to a kustomize
API version. Their
``go.mod`` files are the one place versions are pinned.

A build lands in ``<cache>/controlplane/bin/<group>-<version>-<digest>/``, where the digest covers
the module files, the Go version and the link flags: a second run finds it and builds nothing; a
changed pin builds anew beside it. Builds go to a temp directory and are renamed into place under a
file lock, so concurrent runs (tests and a bench at once) never see half a build. Failures raise
:class:`KitError` naming the log file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet.controlplane.errors import KitError

__all__ = [
    "GROUPS",
    "TOOLS",
    "BuildGroup",
    "ensure_all",
    "ensure_group",
    "ensure_tool",
    "module_version",
    "stderr_progress",
]

GOMOD_DIR = Path(__file__).parent / "gomod"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildGroup:
    """Binaries built together from one Go module of ours."""

    name: str
    module: str  # the upstream module whose version names the build
    packages: dict[str, str]  # binary name -> Go package path
    root: Path = GOMOD_DIR

    @property
    def module_dir(self) -> Path:
        return self.root / self.name

    def version(self) -> str:
        return module_version((self.module_dir / "go.mod").read_text(), self.module)

    def ldflags(self) -> str:
        version = self.version()
        if self.name != "kube":
            return "-s -w"
        major, minor = version.lstrip("v").split(".")[:2]
        stamps = {
            "k8s.io/component-base/version.gitVersion": version,
            "k8s.io/component-base/version.gitMajor": major,
            "k8s.io/component-base/version.gitMinor": minor,
            "k8s.io/client-go/pkg/version.gitVersion": version,
            "k8s.io/client-go/pkg/version.gitMajor": major,
            "k8s.io/client-go/pkg/version.gitMinor": minor,
        }
        return "-s -w " + " ".join(f"-X {key}={value}" for key, value in stamps.items())


GROUPS: dict[str, BuildGroup] = {
    group.name: group
    for group in (
        BuildGroup("etcd", "go.etcd.io/etcd/server/v3", {"etcd": "."}),
        BuildGroup(
            "kube",
            "k8s.io/kubernetes",
            {
                name: f"k8s.io/kubernetes/cmd/{name}"
                for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
            },
        ),
        BuildGroup("kwok", "sigs.k8s.io/kwok", {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}),
    )
}

# Tools fleet itself runs (not part of a cluster), built the same way when none is on PATH.
TOOLS: dict[str, BuildGroup] = {
    "helm": BuildGroup("helm", "helm.sh/helm/v3", {"helm": "helm.sh/helm/v3/cmd/helm"}),
    # main.go of ours; the hub finds the build in the cache (fleet.render.krender.locate)
    "krender": BuildGroup("krender", "sigs.k8s.io/kustomize/api", {"krender": "."}),
}


def module_version(go_mod: str, module: str) -> str:
    """The version `go_mod` requires of `module` (pure)."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod, re.MULTILINE)
    if not match:
        raise KitError(f"go.mod does not require {module}")
    return match.group(1)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise KitError(
            "Go toolchain not found on PATH: the control-plane kit builds kube-apiserver, etcd "
            "and kwok from Go modules (install Go >= 1.26, or use --provider kind)"
        )
    return go


def _go_version(go: str) -> str:
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KitError(f"cannot run {go}: {exc}") from exc
    if out.returncode != 0:
        raise KitError(f"`{go} env GOVERSION` failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _digest(group: BuildGroup, go_version: str) -> str:
    h = hashlib.sha256()
    for path in sorted(group.module_dir.iterdir()):
        if path.suffix in {".mod", ".sum", ".go"}:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(go_version.encode() + b"\0" + group.ldflags().encode())
    return h.hexdigest()[:12]


def stderr_progress(message: str) -> None:
    """The kit's default progress report: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def _run_build(
    *, go: str, group: BuildGroup, out_dir: Path, log_path: Path, progress: Progress
) -> None:
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false")
    command = [go, "build", "-ldflags", group.ldflags(), "-o", f"{out_dir}/"]
    command += list(group.packages.values())
    started = time.monotonic()
    with log_path.open("w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                command, cwd=group.module_dir, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            raise KitError(f"cannot start the Go build of {group.name}: {exc}") from exc
        while True:
            try:
                rc = proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                elapsed = int(time.monotonic() - started)
                progress(f"  still building {group.name} ({elapsed} s; log: {log_path})")
    if rc != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
        raise KitError(
            f"Go build of {group.name} {group.version()} failed (exit {rc}): {tail[0]} "
            f"(log: {log_path})"
        )
    if group.name == "etcd":  # `go build .` names the binary after the module's last element
        built = out_dir / "etcd"
        if not built.exists():
            candidates = [p for p in out_dir.iterdir() if p.is_file()]
            if len(candidates) == 1:
                candidates[0].rename(built)


def ensure_group(
    group: BuildGroup, *, cache_dir: Path, progress: Progress = stderr_progress
) -> Path:
    """The directory holding `group`'s binaries, building them first if no cached build matches."""
    go = _go()
    digest = _digest(group, _go_version(go))
    root = cache_dir / "controlplane"
    final = root / "bin" / f"{group.name}-{group.version()}-{digest}"
    if all((final / name).is_file() for name in group.packages):
        return final
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    with (root / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((final / name).is_file() for name in group.packages):
            return final  # another process built it while we waited
        log_path = root / "logs" / f"build-{group.name}-{group.version()}.log"
        names = ", ".join(group.packages)
        progress(
            f"building {names} {group.version()} from Go modules "
            f"(first run only; minutes on a small machine; log: {log_path})"
        )
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(dir=root / "bin", prefix=f".{group.name}-"))
        try:
            _run_build(go=go, group=group, out_dir=tmp, log_path=log_path, progress=progress)
            missing = [name for name in group.packages if not (tmp / name).is_file()]
            if missing:
                raise KitError(f"Go build of {group.name} produced no {missing} (log: {log_path})")
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        progress(f"built {names} in {time.monotonic() - started:.0f} s")
    return final


def ensure_tool(name: str, *, cache_dir: Path, progress: Progress = stderr_progress) -> Path:
    """The path of tool `name`: ``helm`` on PATH, else a build of the pinned version.

    ``krender`` is always our build (a program of that name on PATH is someone else's)."""
    found = shutil.which(name) if name != "krender" else None
    if found:
        return Path(found)
    group = TOOLS[name]
    return ensure_group(group, cache_dir=cache_dir, progress=progress) / name


def ensure_all(*, cache_dir: Path, progress: Progress = stderr_progress) -> dict[str, Path]:
    """Every control-plane binary, by name, building what is missing."""
    paths: dict[str, Path] = {}
    for group in GROUPS.values():
        directory = ensure_group(group, cache_dir=cache_dir, progress=progress)
        paths.update({name: directory / name for name in group.packages})
    return paths
