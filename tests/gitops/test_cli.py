"""``fleet image set`` and ``fleet rollback`` through the real entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli.main import main
from tests.gitops.repos import ConfigRepo, git


def test_image_set_push_and_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = ConfigRepo(tmp_path)
    good = repo.head()
    argv = ["image", "set", "app=registry.example.com/app:abc", "worker:2.0"]
    code = main([*argv, "--path", "deployment/prod", "--repo", repo.url, "--push"])
    out = capsys.readouterr().out
    assert code == 0
    assert "app set -> registry.example.com/app:abc" in out and "worker set -> worker:2.0" in out
    assert "pushed to main: fleet: set 2 images in deployment/prod" in out
    config = tmp_path / "fleet.yaml"
    config.write_text(
        f"apps:\n  - name: web\n    source: {{repoURL: '{repo.url}', path: deployment/prod}}\n"
        "    destination: {namespace: web}\n"
    )
    assert main(["rollback", "web", "--to", good, "--config", str(config)]) == 0
    assert "pushed to main: Roll back web to" in capsys.readouterr().out
    assert git("diff", good, "main", cwd=repo.bare) == ""


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = ConfigRepo(tmp_path)
    code = main(
        ["image", "set", "nginx:1.27", "--path", "deployment/prod", "--repo", repo.url, "--push"]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: ") and "'nginx' is not in images:" in err
    assert main(["rollback", "web", "--commit", "abc", "--config", str(tmp_path / "no.yaml")]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["image", "set", "app", "--path", "x"]) == 1
    assert "no tag or digest" in capsys.readouterr().err


def test_a_refused_push_shows_what_the_remote_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = ConfigRepo(tmp_path)
    hook = repo.bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\necho 'policy: every commit to main needs a ticket id (OPS-123)' >&2\nexit 1\n"
    )
    hook.chmod(0o755)
    code = main(["image", "set", "app=app:v2", "--path", "deployment/prod", "--repo", repo.url,
                 "--push"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert "the remote refused the push to refs/heads/main" in err
    assert "policy: every commit to main needs a ticket id (OPS-123)" in err, err
    assert "pre-receive hook declined" in err, err
