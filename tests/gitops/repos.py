"""Real git for the gitops tests: a bare config repo on disk, seeded, and clones of it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.com",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}

KUSTOMIZATION = """\
# prod overlay: CI bumps the images below
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml   # the app
images:
  - name: app
    newName: registry.example.com/app
    newTag: "1.0"  # bumped by CI
  - name: worker
    newName: registry.example.com/worker
    newTag: "1.0"
  - name: cache
    newTag: "7"
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - {name: app, image: app}
        - {name: worker, image: worker}
        - {name: cache, image: cache}
"""


def git(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    full = dict(os.environ, **GIT_ENV)
    full.update(env or {})
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=full, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


class ConfigRepo:
    """A bare repository `bare` (branch main) seeded with `files`, and clones made on demand."""

    def __init__(self, root: Path, files: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.bare = root / "config.git"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        self.seed = self.clone("seed")
        self.commit(
            self.seed,
            files
            or {
                "deployment/prod/kustomization.yaml": KUSTOMIZATION,
                "deployment/prod/deployment.yaml": DEPLOYMENT,
            },
            message="initial layout",
        )

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def clone(self, name: str) -> Path:
        path = self.root / name
        git("clone", "--quiet", str(self.bare), str(path), cwd=self.root)
        git("checkout", "--quiet", "-B", "main", cwd=path)
        return path

    def commit(self, work: Path, files: Mapping[str, str | None], *, message: str) -> str:
        """Write (None: delete) `files` in clone `work`, commit, push main; the new sha."""
        if self.head():
            git("pull", "--quiet", "--rebase", "origin", "main", cwd=work)
        for rel, text in files.items():
            path = work / rel
            if text is None:
                git("rm", "--quiet", rel, cwd=work)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "--all", cwd=work)
        git("commit", "--quiet", "-m", message, cwd=work)
        git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    def head(self, branch: str = "main") -> str:
        try:
            return git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=self.bare)
        except subprocess.CalledProcessError:
            return ""

    def show(self, path: str, *, rev: str = "main") -> str:
        return git("show", f"{rev}:{path}", cwd=self.bare)

    def log(self, rev: str = "main") -> list[str]:
        return git("log", "--format=%s", rev, cwd=self.bare).splitlines()
