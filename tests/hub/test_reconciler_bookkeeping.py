"""The reconciler's own bookkeeping, pure coordination with stand-ins for git:

- a commit's time is asked of git once, however many targets apply it at the same moment (the
  side-by-side bench counted one ``git show`` per target per commit); the mirror counts its calls
  and answers after a pause, so the callers overlap;
- a reconcile that ends after its app left the config records nothing: the target was forgotten
  when the app left and must not come back (CI saw an app-of-apps child outlive its removal)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import anyio
import pytest

from fleet.config import App, Config
from fleet.hub.reconciling import Reconciler
from fleet.hub.settings import HubSettings
from fleet.reconcile import summary
from fleet.reconcile.desired import DesiredState
from fleet.report import Targets
from fleet.report.metrics import Metrics

pytestmark = pytest.mark.anyio


class _Mirror:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def local_git(self, *args: str) -> bytes:
        self.calls.append(args)
        await anyio.sleep(0.05)  # still running when the other targets ask
        return b"1700000000\n"


class _Sources:
    def __init__(self, mirror: _Mirror) -> None:
        self._mirror = mirror

    def mirror(self, _url: str) -> _Mirror:
        return self._mirror


class _Desired:
    def __init__(self, mirror: _Mirror) -> None:
        self.sources = _Sources(mirror)


async def test_one_git_show_per_commit_for_every_target(tmp_path: Path) -> None:
    mirror = _Mirror()
    reconciler = Reconciler(
        settings=HubSettings(state_dir=tmp_path),
        desired=cast(DesiredState, _Desired(mirror)),
        targets=Targets(),
        metrics=Metrics(),
    )
    app = cast(App, SimpleNamespace(source=SimpleNamespace(repo_url="https://git.example/r")))
    commit = "a" * 40
    seen: list[float | None] = []

    async def one() -> None:
        seen.append(await reconciler._commit_time(app, commit))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert seen == [1700000000.0] * 8
    assert len(mirror.calls) == 1, mirror.calls
    assert await reconciler._commit_time(app, commit) == 1700000000.0
    assert len(mirror.calls) == 1  # and remembered after


def _reconciler(tmp_path: Path) -> Reconciler:
    return Reconciler(
        settings=HubSettings(state_dir=tmp_path),
        desired=cast(DesiredState, _Desired(_Mirror())),
        targets=Targets(),
        metrics=Metrics(),
    )


def test_a_reconcile_ending_after_its_app_left_records_nothing(tmp_path: Path) -> None:
    reconciler = _reconciler(tmp_path)
    assert reconciler.config == Config()  # no app named "gone" (it left the config meanwhile)
    previous = reconciler.targets.status(("prod-1", "gone"))
    attempt = summary.Attempt(started=1.0, finished=2.0, commit="a" * 40, error="boom")
    reconciler._commit(previous, attempt)
    assert reconciler.targets.of_app("gone") == []
