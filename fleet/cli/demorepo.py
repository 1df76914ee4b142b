"""The demo's config repo: a bare repository and its work tree seeded from
``examples/config-repo``, the ``fleet.yaml`` that points at it, and the clusters' labels.

The example's base gets a Namespace (renamed by each overlay), since fleet applies into an
existing namespace; everything else is the example as a team would commit it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from fleet.config import Config
from fleet.config import loading as config_loading
from fleet.errors import FleetError

__all__ = ["EXAMPLE", "MARKER", "DemoError", "git", "labels", "prepare", "seed", "write_config"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config-repo"
MARKER = ".fleet-demo"
_NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: webapp  # renamed per overlay\n"
_GIT_CONFIG = {"user.name": "fleet demo", "user.email": "demo@fleet.invalid", "commit.gpgsign": "0"}


class DemoError(FleetError):
    """A step of the demo failed; the message says which and why."""


def prepare(root: Path) -> None:
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise DemoError(f"{root} is not empty and was not made by fleet demo; pass --dir")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / MARKER).write_text("made by `fleet demo`: wiped and reseeded by each run\n")


def git(*args: str, cwd: Path) -> str:
    env, argv = dict(os.environ, GIT_TERMINAL_PROMPT="0"), ["git", *args]
    done = subprocess.run(argv, check=False, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DemoError(f"git {args[0]} in {cwd} failed: {last}")
    return done.stdout.strip()


def seed(*, root: Path, bare: Path, work: Path) -> str:
    """The bare repo and its work tree, seeded from the example; the seed commit's sha."""
    if not (EXAMPLE / "fleet.yaml").is_file():
        raise DemoError(f"the example config repo is missing: {EXAMPLE}")
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=root)
    git("clone", "--quiet", str(bare), str(work), cwd=root)
    git("checkout", "--quiet", "-B", "main", cwd=work)
    for key, value in _GIT_CONFIG.items():
        git("config", key, value, cwd=work)
    for name in ("base", "deployment"):
        shutil.copytree(EXAMPLE / name, work / name)
    shutil.copyfile(EXAMPLE / "README.md", work / "README.md")
    (work / "base" / "namespace.yaml").write_text(_NAMESPACE)
    base = work / "base" / "kustomization.yaml"
    text, found = re.subn(
        r"(?m)^resources:\n", "resources:\n  - namespace.yaml\n", base.read_text()
    )
    if found != 1:
        raise DemoError(f"{base}: no `resources:` list to add the Namespace to")
    base.write_text(text)
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", "seed: webapp from examples/config-repo", cwd=work)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def write_config(*, bare: Path, path: Path) -> Config:
    """The example's fleet.yaml, comments kept, with every repoURL pointed at the local repo."""
    text = (EXAMPLE / "fleet.yaml").read_text()
    text = re.sub(r"(?m)^(\s*repoURL:).*$", rf"\1 {bare.resolve()}", text)
    path.write_text("# written by `fleet demo` from examples/config-repo\n" + text)
    return config_loading.load(path)


def labels(count: int) -> dict[str, dict[str, str]]:
    names = ["staging-1"] + [f"prod-{i}" for i in range(1, count)]
    return {name: {"env": name.split("-")[0]} for name in names}
