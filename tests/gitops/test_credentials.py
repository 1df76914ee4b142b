"""Push credentials come from the environment and leak nowhere: not into the process list,
the git log, the remote URL, logs or error messages.

A real ``git http-backend`` behind basic auth (:class:`tests.sources.gitkit.GitHttpServer`) takes
the pushes; a thread samples every process's command line while fleet pushes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleet.cli.main import main
from fleet.errors import ConfigError, StalledError
from fleet.gitops import Auth, PushPolicy, images, set_image
from tests.gitops.repos import ConfigRepo, git
from tests.sources.gitkit import GitHttpServer

TOKEN = "glpat-Zq7sEcReT0kEn4242"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ConfigRepo, GitHttpServer]]:
    repo = ConfigRepo(tmp_path)
    git("config", "http.receivepack", "true", cwd=repo.bare)
    with GitHttpServer(tmp_path, auth=("x-access-token", TOKEN)) as server:
        yield repo, server


class CommandLines:
    """Every process command line seen while running, sampled every few milliseconds."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for proc in psutil.process_iter(["cmdline"]):
                self.seen.add(" ".join(proc.info["cmdline"] or []))
            self._stop.wait(0.002)

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_token_from_env_pushes_and_leaks_nowhere(
    served: tuple[ConfigRepo, GitHttpServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, server = served
    monkeypatch.setenv("FLEET_GIT_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    with CommandLines() as lines:
        code = main(
            [
                "image", "set", "app=registry.example.com/app:c0ffee",
                "--path", "deployment/prod", "--repo", server.url("config.git"), "--push",
                "--source-commit", "c0ffee1234",
            ]
        )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert 'newTag: "c0ffee"' in repo.show("deployment/prod/kustomization.yaml")
    assert any("git" in line and "push" in line for line in lines.seen)  # the sampler saw git run
    assert not [line for line in lines.seen if TOKEN in line]
    assert TOKEN not in git("log", "--all", "--format=%H %an %ae %s %b", cwd=repo.bare)
    assert TOKEN not in caplog.text and TOKEN not in out.out + out.err
    assert server.counts.denied >= 1  # git asked without, then answered the challenge


def test_token_file_and_username(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    auth = Auth.from_env({"FLEET_GIT_TOKEN_FILE": str(secret), "FLEET_GIT_USERNAME": "bot"})
    assert auth == Auth(username="bot", token=TOKEN)
    assert TOKEN not in repr(auth)
    assert Auth.from_env({}) is None
    with pytest.raises(ConfigError, match="FLEET_GIT_TOKEN_FILE"):
        Auth.from_env({"FLEET_GIT_TOKEN_FILE": str(tmp_path / "missing")})


@pytest.mark.anyio
async def test_wrong_or_missing_token_is_a_clear_stalled_error(
    served: tuple[ConfigRepo, GitHttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    repo, server = served
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + TOKEN
    with pytest.raises(StalledError, match="access refused") as caught:
        await set_image(
            repo=server.url("config.git"),
            path="deployment/prod",
            changes=[images.parse("app:1")],
            push=True,
            auth=Auth("x-access-token", wrong),
            policy=PushPolicy(attempts=1),
        )
    assert wrong not in str(caught.value) and wrong not in caplog.text
    url = server.url("config.git").replace("http://", f"http://x-access-token:{wrong}@")
    with pytest.raises(StalledError, match="access refused") as caught:
        await set_image(
            repo=url, path="deployment/prod", changes=[images.parse("app:1")], push=True
        )
    assert wrong not in str(caught.value) and "git clone of http://***@127.0.0.1" in str(
        caught.value
    )
    assert len(repo.log()) == 1
