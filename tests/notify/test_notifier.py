"""The notifier against a real HTTP receiver on 127.0.0.1: payloads, signatures, commit statuses,
retries, Retry-After, deduplication, filters, a full queue, a hung receiver, and its metrics."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import anyio
import pytest
from prometheus_client import CollectorRegistry

from fleet.notify import DeliverySettings, Notifier, NotifyCollector, SinkSpec
from fleet.report import TargetEvent, TargetStatus
from fleet.runtime import RealClock
from tests.notify.receiver import Receiver, Reply, until

pytestmark = pytest.mark.anyio

A, B = "a" * 40, "b" * 40
SECRET = "hook-signing-key"
ENV = {"HOOK_KEY": SECRET, "GH_TOKEN": "ghp_testtoken123", "GL_TOKEN": "glpat-testtoken456"}
FAST = DeliverySettings(initial=0.05, cap=0.2, jitter=0.0, max_retry_after=5.0)


def _event(
    kind: str = "SyncFailed", *, app: str = "web", cluster: str = "prod-1", commit: str = A
) -> TargetEvent:
    severity = "warning" if kind in ("SyncFailed", "RenderFailed", "Degraded") else "normal"
    return TargetEvent(
        time=1700000000.0,
        cluster=cluster,
        app=app,
        type=kind,
        severity=severity,
        message=f"{kind} of {app} on {cluster}",
        commit=commit,
        sync="OutOfSync",
        health="Healthy",
    )


def _status(app: str = "web", cluster: str = "prod-1") -> TargetStatus:
    return TargetStatus(cluster=cluster, app=app)


def _green(commit: str = A, cluster: str = "prod-1") -> TargetStatus:
    return TargetStatus(
        cluster=cluster,
        app="web",
        sync="Synced",
        health="Healthy",
        desired_commit=commit,
        desired_digest="d",
        applied_commit=commit,
        applied_digest="d",
    )


def _hook(url: str, **extra: object) -> SinkSpec:
    fields: dict[str, object] = {
        "name": "hook",
        "type": "webhook",
        "url": url,
        "secret_env": "HOOK_KEY",
        "on": ("SyncFailed", "RenderFailed", "Synced", "Recovered"),
        "attempts": 3,
        "timeout": 2.0,
        **extra,
    }
    return SinkSpec(**fields)  # type: ignore[arg-type]


@asynccontextmanager
async def running(specs: Iterable[SinkSpec], *, start: bool = True) -> AsyncIterator[Notifier]:
    repos = {"web": "https://github.com/acme/web.git", "api": "git@gitlab.example:group/api.git"}
    notifier = Notifier(
        specs, env=ENV, repo_of=lambda app: repos[app], clock=RealClock(), delivery_settings=FAST
    )
    async with anyio.create_task_group() as group:
        if start:
            await group.start(notifier.run)
        yield notifier
        group.cancel_scope.cancel()


async def test_webhook_is_hmac_signed_and_slack_gets_its_text() -> None:
    async with Receiver() as rx:
        slack = SinkSpec(
            name="chat", type="slack", url=rx.url("/services/T0/B0/xyz"), on=("SyncFailed",)
        )
        async with running([_hook(rx.url("/hook")), slack]) as notifier:
            notifier(_status(), (_event("SyncFailed"),))
            await until(lambda: len(rx.requests) == 2)
            # the receiver has both; each sender counts its delivery once it reads the answer
            await until(
                lambda: notifier.stats()["hook"].sent == 1 and notifier.stats()["chat"].sent == 1
            )
        by_path = {r.path: r for r in rx.requests}
        hook = by_path["/hook"]
        expected = "sha256=" + hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hook.headers["X-Fleet-Signature"], expected)
        assert hook.headers["X-Fleet-Event"] == "SyncFailed"
        assert hook.headers["Content-Type"] == "application/json"
        body = hook.json()
        assert (body["type"], body["app"], body["cluster"], body["commit"]) == (
            "SyncFailed",
            "web",
            "prod-1",
            A,
        )
        assert (body["severity"], body["message"]) == ("warning", "SyncFailed of web on prod-1")
        chat = by_path["/services/T0/B0/xyz"].json()
        assert set(chat) == {"text"}
        assert "*web* on *prod-1*: SyncFailed at `aaaaaaaaaaaa`" in chat["text"]
        assert len(rx.requests) == 2, "each sent once"


async def test_a_wrong_key_does_not_verify() -> None:
    async with Receiver() as rx:
        async with running([_hook(rx.url("/hook"))]) as notifier:
            notifier(_status(), (_event("SyncFailed"),))
            await until(lambda: len(rx.requests) == 1)
        hook = rx.requests[0]
        forged = "sha256=" + hmac.new(b"another-key", hook.body, hashlib.sha256).hexdigest()
        assert hook.headers["X-Fleet-Signature"] != forged


async def test_commit_statuses_on_github_and_gitlab() -> None:
    async with Receiver() as rx:
        github = SinkSpec(
            name="gh",
            type="github-status",
            api_url=rx.url(),
            token_env="GH_TOKEN",
            link_url="https://fleet.example/apps/{app}?cluster={cluster}",
        )
        gitlab = SinkSpec(name="gl", type="gitlab-status", api_url=rx.url(), token_env="GL_TOKEN")
        async with running([github, gitlab]) as notifier:
            notifier(_green(A), ())
            await until(lambda: len(rx.requests) == 2)
            notifier(_green(A), ())  # the same state again: nothing new
            failing = TargetStatus(
                cluster="prod-1",
                app="web",
                sync="OutOfSync",
                desired_commit=B,
                applied_commit=A,
                error="app/x.yaml: mapping values are not allowed",
                error_reason="RenderFailed",
            )
            notifier(failing, (_event("RenderFailed", commit=B),))
            await until(lambda: len(rx.requests) == 4)
            await anyio.sleep(0.1)
        assert len(rx.requests) == 4
        gh = [r for r in rx.requests if r.path.startswith("/repos/")]
        gl = [r for r in rx.requests if r.path.startswith("/api/v4/")]
        assert [r.path for r in gh] == [
            f"/repos/acme/web/statuses/{A}",
            f"/repos/acme/web/statuses/{B}",
        ]
        assert gh[0].headers["Authorization"] == "Bearer ghp_testtoken123"
        assert gh[0].headers["Accept"] == "application/vnd.github+json"
        assert gh[0].json() == {
            "state": "success",
            "context": "fleet/web/prod-1",
            "description": "Synced and Healthy on prod-1",
            "target_url": "https://fleet.example/apps/web?cluster=prod-1",
        }
        assert gh[1].json()["state"] == "failure"
        assert gh[1].json()["description"].startswith("RenderFailed: app/x.yaml")
        assert [r.path for r in gl] == [
            f"/api/v4/projects/acme%2Fweb/statuses/{A}",
            f"/api/v4/projects/acme%2Fweb/statuses/{B}",
        ]
        assert gl[0].headers["PRIVATE-TOKEN"] == "glpat-testtoken456"
        assert gl[0].json()["name"] == "fleet/web/prod-1" and "target_url" not in gl[0].json()
        assert [r.json()["state"] for r in gl] == ["success", "failed"]


async def test_gitlab_refusing_a_state_the_commit_already_has_is_not_a_failure() -> None:
    async with Receiver() as rx:
        same = '{"message":"Cannot transition status via :run from :running"}'
        rx.script = [Reply(400, text=same), Reply(400, text='{"message":"403 Forbidden"}')]
        gitlab = SinkSpec(name="gl", type="gitlab-status", api_url=rx.url(), token_env="GL_TOKEN")
        async with running([gitlab]) as notifier:
            notifier(_green(A), ())  # e.g. posted again after a restart
            await until(lambda: notifier.stats()["gl"].sent == 1)
            notifier(_green(A, cluster="prod-2"), ())  # any other 400 is a failure
            await until(lambda: notifier.stats()["gl"].failed == 1)
        assert notifier.stats()["gl"].last_error == "rejected with HTTP 400"


async def test_retried_after_a_500_then_delivered_with_the_same_delivery_id() -> None:
    async with Receiver() as rx:
        rx.script = [Reply(500), Reply(503)]
        async with running([_hook(rx.url("/hook"))]) as notifier:
            notifier(_status(), (_event(),))
            await until(lambda: notifier.stats()["hook"].sent == 1)
        assert len(rx.requests) == 3
        assert len({r.headers["X-Fleet-Delivery"] for r in rx.requests}) == 1
        stats = notifier.stats()["hook"]
        assert (stats.sent, stats.failed, stats.retried) == (1, 0, 2)


async def test_no_retry_after_a_400() -> None:
    async with Receiver() as rx:
        rx.script = [Reply(400)]
        async with running([_hook(rx.url("/hook"))]) as notifier:
            notifier(_status(), (_event("SyncFailed"),))
            await until(lambda: notifier.stats()["hook"].failed == 1)
            notifier(_status(), (_event("Recovered"),))  # the sink goes on: the next one is sent
            await until(lambda: notifier.stats()["hook"].sent == 1)
        assert [r.headers["X-Fleet-Event"] for r in rx.requests] == ["SyncFailed", "Recovered"]
        stats = notifier.stats()["hook"]
        assert (stats.retried, stats.last_error) == (0, "rejected with HTTP 400")


async def test_a_429_is_retried_after_its_retry_after() -> None:
    async with Receiver() as rx:
        rx.script = [Reply(429, headers={"Retry-After": "1"})]
        async with running([_hook(rx.url("/hook"))]) as notifier:
            notifier(_status(), (_event(),))
            await until(lambda: notifier.stats()["hook"].sent == 1)
        first, second = rx.requests
        assert second.at - first.at >= 1.0  # waited as told, not the 0.05 s backoff


async def test_githubs_rate_limit_403_is_waited_out_and_a_plain_403_is_not_retried() -> None:
    async with Receiver() as rx:
        rx.script = [Reply(403, headers={"Retry-After": "1"}), Reply(200), Reply(403)]
        async with running([_hook(rx.url("/hook"))]) as notifier:
            notifier(_status(), (_event("SyncFailed"),))
            await until(lambda: notifier.stats()["hook"].sent == 1)
            notifier(_status(), (_event("Recovered"),))
            await until(lambda: notifier.stats()["hook"].failed == 1)
        limited, retried, refused = rx.requests
        assert retried.at - limited.at >= 1.0
        assert refused.headers["X-Fleet-Event"] == "Recovered"
        assert notifier.stats()["hook"].last_error == "rejected with HTTP 403"


async def test_the_same_event_is_sent_once_within_the_window() -> None:
    async with Receiver() as rx:
        async with running([_hook(rx.url("/hook"), dedup_window=0.5)]) as notifier:
            for _ in range(5):  # a flapping target
                notifier(_status(), (_event("SyncFailed"),))
            notifier(_status(), (_event("SyncFailed", commit=B),))  # another commit: news
            notifier(_status(), (_event("SyncFailed", cluster="prod-2"),))  # another target
            await until(lambda: notifier.stats()["hook"].sent == 3)
            await anyio.sleep(0.6)  # the window has passed: told again
            notifier(_status(), (_event("SyncFailed"),))
            await until(lambda: notifier.stats()["hook"].sent == 4)
        sent = [(r.json()["cluster"], r.json()["commit"]) for r in rx.requests]
        assert sent == [("prod-1", A), ("prod-1", B), ("prod-2", A), ("prod-1", A)]
        assert notifier.stats()["hook"].deduplicated == 4


async def test_filters_by_event_type_app_and_cluster() -> None:
    async with Receiver() as rx:
        spec = _hook(rx.url("/hook"), on=("SyncFailed",), apps=("web*",), clusters=("prod-*",))
        async with running([spec]) as notifier:
            notifier(_status(), (_event("Synced"), _event("Drift")))  # types not asked for
            notifier(_status("api"), (_event("SyncFailed", app="api"),))  # another app
            notifier(_status(cluster="dev-1"), (_event("SyncFailed", cluster="dev-1"),))
            notifier(_status("web-canary"), (_event("SyncFailed", app="web-canary"),))
            await until(lambda: len(rx.requests) == 1)
            await anyio.sleep(0.1)
        assert [(r.json()["app"], r.json()["type"]) for r in rx.requests] == [
            ("web-canary", "SyncFailed")
        ]


async def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    async with Receiver() as rx:
        async with running([_hook(rx.url("/hook"), queue_size=2)], start=False) as notifier:
            for cluster in ("c1", "c2", "c3", "c4"):
                notifier(_status(cluster=cluster), (_event(cluster=cluster),))
            assert notifier.stats()["hook"].dropped == 2
            assert notifier.stats()["hook"].queued == 2
            notifier(_status(cluster="c1"), (_event(cluster="c1"),))  # dropped: not a duplicate
            assert notifier.stats()["hook"].deduplicated == 0
            async with anyio.create_task_group() as group:
                await group.start(notifier.run)
                await until(lambda: notifier.stats()["hook"].sent == 2)
                group.cancel_scope.cancel()
        assert [r.json()["cluster"] for r in rx.requests] == ["c4", "c1"]


async def test_a_hung_receiver_never_blocks_the_call_and_times_out() -> None:
    async with Receiver() as rx:
        rx.script = [Reply(hang=True), Reply(hang=True)]
        async with running([_hook(rx.url("/hook"), timeout=0.3, attempts=2)]) as notifier:
            started = time.perf_counter()
            notifier(_status(), (_event(),))
            returned = time.perf_counter() - started
            assert not rx.requests  # the call returned before anything was sent
            assert returned < 0.25  # far below the 0.3 s timeout: it never waited on the sink
            await until(lambda: notifier.stats()["hook"].failed == 1)
        stats = notifier.stats()["hook"]
        assert (len(rx.requests), stats.retried, stats.last_error) == (
            2,
            1,
            "timed out after 0.3 s",
        )


async def test_a_missing_secret_disables_that_sink_only(caplog: pytest.LogCaptureFixture) -> None:
    async with Receiver() as rx:
        broken = _hook(rx.url("/broken"), name="broken", secret_env="NOT_SET_ANYWHERE")
        with caplog.at_level(logging.WARNING, logger="fleet.notify"):
            async with running([broken, _hook(rx.url("/hook"))]) as notifier:
                notifier(_status(), (_event(),))
                await until(lambda: notifier.stats()["hook"].sent == 1)
        assert [r.path for r in rx.requests] == ["/hook"]
        assert notifier.stats()["broken"].failed == 1
        (problem,) = notifier.problems()
        assert (
            "sink broken: secretEnv: the environment variable NOT_SET_ANYWHERE is not set"
            in problem
        )
        assert "event=notify_sink_disabled" in caplog.text


async def test_a_failure_log_holds_neither_the_path_nor_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Receiver() as rx:
        rx.script = [Reply(404)]
        url = rx.url("/services/T000/B000/SECRETPATH?token=querysecret")
        slack = SinkSpec(name="chat", type="slack", url_env="SLACK_URL", on=("SyncFailed",))
        notifier = Notifier(
            [slack], env={"SLACK_URL": url}, repo_of=str, clock=RealClock(), delivery_settings=FAST
        )
        with caplog.at_level(logging.INFO, logger="fleet.notify"):
            async with anyio.create_task_group() as group:
                await group.start(notifier.run)
                notifier(_status(), (_event(),))
                await until(lambda: notifier.stats()["chat"].failed == 1)
                group.cancel_scope.cancel()
        assert "event=notify_failed sink=chat" in caplog.text
        assert f"endpoint=http://127.0.0.1:{rx.port} " in caplog.text
        assert "SECRETPATH" not in caplog.text and "querysecret" not in caplog.text


async def test_counters_are_exported_as_metrics() -> None:
    async with Receiver() as rx:
        rx.script = [Reply(400)]
        async with running([_hook(rx.url("/hook"))]) as notifier:
            notifier(_status(), (_event("SyncFailed"),))
            notifier(_status(), (_event("Recovered"),))
            await until(lambda: notifier.stats()["hook"].sent == 1)
    registry = CollectorRegistry()
    registry.register(NotifyCollector(notifier))
    labels = {"sink": "hook", "type": "webhook"}
    assert registry.get_sample_value("fleet_notifications_sent_total", labels) == 1.0
    assert registry.get_sample_value("fleet_notifications_failed_total", labels) == 1.0
    assert registry.get_sample_value("fleet_notifications_dropped_total", labels) == 0.0
    assert registry.get_sample_value("fleet_notifications_queued", labels) == 0.0
