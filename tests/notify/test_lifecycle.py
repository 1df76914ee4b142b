"""The notifier over its life: a config reload while running, a flush before stop, and the
dedup window measured on virtual time."""

from __future__ import annotations

import anyio
import pytest

from fleet.notify import DeliverySettings, Notifier, SinkSpec
from fleet.report import TargetEvent, TargetStatus
from fleet.runtime import RealClock, VirtualClock
from tests.notify.receiver import Receiver, Reply, until

pytestmark = pytest.mark.anyio

ENV = {"KEY": "lifecycle-key"}
FAST = DeliverySettings(initial=0.05, cap=0.1, jitter=0.0)
STATUS = TargetStatus(cluster="prod-1", app="web")


def _event(commit: str = "a" * 40, kind: str = "SyncFailed") -> TargetEvent:
    return TargetEvent(
        time=1.0,
        cluster="prod-1",
        app="web",
        type=kind,
        severity="warning",
        message="failed",
        commit=commit,
    )


def _hook(url: str, *, dedup_window: float = 300.0) -> SinkSpec:
    return SinkSpec(
        name="hook",
        type="webhook",
        url=url,
        secret_env="KEY",
        on=("SyncFailed",),
        dedup_window=dedup_window,
    )


def _notifier(specs: list[SinkSpec], clock: RealClock | VirtualClock) -> Notifier:
    return Notifier(specs, env=ENV, repo_of=str, clock=clock, delivery_settings=FAST)


async def test_a_reload_while_running_moves_adds_and_removes_sinks() -> None:
    async with Receiver() as rx:
        notifier = _notifier([_hook(rx.url("/a"))], RealClock())
        async with anyio.create_task_group() as group:
            await group.start(notifier.run)
            notifier(STATUS, (_event("1" * 40),))
            await until(lambda: len(rx.requests) == 1)

            chat = SinkSpec(name="chat", type="slack", url=rx.url("/chat"), on=("SyncFailed",))
            notifier.configure([_hook(rx.url("/b")), chat])  # the hook moved; a sink added
            notifier(STATUS, (_event("2" * 40),))
            await until(lambda: len(rx.requests) == 3)
            assert notifier.stats()["hook"].sent == 2  # counters live as long as the name

            notifier.configure([chat])  # the hook removed
            notifier(STATUS, (_event("3" * 40),))
            await until(lambda: len(rx.requests) == 4)
            await anyio.sleep(0.1)
            assert set(notifier.stats()) == {"chat"}
            group.cancel_scope.cancel()
        assert sorted(r.path for r in rx.requests) == ["/a", "/b", "/chat", "/chat"]


async def test_flush_returns_once_everything_queued_was_sent() -> None:
    async with Receiver() as rx:
        rx.script = [Reply(500)]  # one retry on the way
        notifier = _notifier([_hook(rx.url("/hook"))], RealClock())
        for n in range(3):
            notifier(STATUS, (_event(str(n) * 40),))
        async with anyio.create_task_group() as group:
            await group.start(notifier.run)
            with anyio.move_on_after(10) as scope:
                await notifier.flush()
            assert not scope.cancelled_caught
            assert notifier.stats()["hook"].sent == 3 and len(rx.requests) == 4
            group.cancel_scope.cancel()


async def test_the_dedup_window_on_virtual_time() -> None:
    clock = VirtualClock()
    notifier = _notifier([_hook("http://127.0.0.1:9/hook", dedup_window=300.0)], clock)
    notifier(STATUS, (_event(),))
    await clock.advance(299.9)
    notifier(STATUS, (_event(),))  # within the window: not again
    assert (notifier.stats()["hook"].queued, notifier.stats()["hook"].deduplicated) == (1, 1)
    await clock.advance(0.1)
    notifier(STATUS, (_event(),))  # the window is over: told again
    notifier(STATUS, (_event(kind="Drift"),))  # not a type this sink takes
    assert (notifier.stats()["hook"].queued, notifier.stats()["hook"].deduplicated) == (2, 1)


async def test_an_app_without_a_known_repository_never_raises_into_the_reconcile() -> None:
    def unknown(app: str) -> str:
        raise KeyError(app)

    spec = SinkSpec(name="gh", type="github-status", token_env="KEY")
    notifier = Notifier([spec], env=ENV, repo_of=unknown, clock=VirtualClock())
    green = TargetStatus(
        cluster="prod-1", app="web", sync="Synced", health="Healthy", desired_commit="a" * 40,
        applied_commit="a" * 40,
    )  # fmt: skip
    notifier(green, ())  # returns: the failure is counted, not raised
    stats = notifier.stats()["gh"]
    assert (stats.failed, stats.queued, stats.last_error) == (
        1,
        0,
        "no repository known for app web",
    )
