"""The pure parts of the Flux side-by-side bench: its objects, the breakdown parser, the ratios.

Nothing here needs the Flux build or a cluster: the Flux objects are checked as the dicts the bench
creates, the breakdown is fed JSON log lines written the way the hub's formatter writes them
(``fleet.logs``, so a change of the log's shape fails here), and the figures are fed rounds.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import logging

import pytest

from bench import breakdown, flux_side_by_side
from bench.flux import build, controllers, objects, timeline
from fleet import logs


def test_kustomization_targets_the_cluster_through_its_kubeconfig_secret() -> None:
    k = objects.kustomization("bench-3", path="app/", target_namespace="bench-flux")
    secret = objects.kubeconfig_secret("bench-3", "apiVersion: v1\nkind: Config\n")
    assert k["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert k["metadata"] == {"name": "app-bench-3", "namespace": "flux-system"}
    ref = k["spec"]["kubeConfig"]["secretRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "value"}
    assert base64.b64decode(secret["data"]["value"]).decode().startswith("apiVersion: v1")
    assert k["spec"]["path"] == "./app"
    assert k["spec"]["targetNamespace"] == "bench-flux"
    assert k["spec"]["sourceRef"] == {"kind": "GitRepository", "name": objects.GIT_REPOSITORY}
    assert k["spec"]["prune"] is True


def test_git_repository_and_the_receivers_patch() -> None:
    repo = objects.git_repository("http://127.0.0.1:9/app.git")
    assert repo["kind"] == "GitRepository"
    assert repo["spec"]["url"] == "http://127.0.0.1:9/app.git"
    assert repo["spec"]["ref"] == {"branch": "main"}
    patch = objects.requested_at_patch("1700000000.5")
    assert patch == {"metadata": {"annotations": {objects.REQUESTED_AT: "1700000000.5"}}}
    assert objects.REQUESTED_AT == "reconcile.fluxcd.io/requestedAt"


def test_tuning_flags_and_the_pinned_version() -> None:
    assert controllers.Tuning().flags() == []
    assert controllers.Tuning(20, 500, 1000).flags() == [
        "--concurrent=20",
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
    ]
    for name, group in build.CONTROLLERS.items():
        assert group.version() == "v1.9.0", name
        assert group.packages == {name: f"github.com/fluxcd/{name}"}
        assert f"tool github.com/fluxcd/{name}" in (group.module_dir / "go.mod").read_text()


def _json_log(records: list[tuple[float, str, tuple[object, ...]]]) -> list[str]:
    """Lines as ``fleet run --log-format json`` writes them (the hub's own formatter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.Formatter(logs.Format.JSON))
    logger = logging.getLogger("fleet.test_flux_bench")
    for created, msg, args in records:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None)
        record.created, record.msecs = created, (created % 1) * 1000
        handler.handle(record)
    return stream.getvalue().splitlines()


SHA = "0123456789abcdef0123456789abcdef01234567"


def _commit() -> breakdown.CommitTimes:
    t0 = 1_800_000_000.0
    return breakdown.CommitTimes(
        index=3,
        sha=SHA,
        push_start=t0,
        push_end=t0 + 0.05,
        webhook_sent=t0 + 0.05,
        webhook_answered=t0 + 0.20,
        seen={"a": t0 + 1.0, "b": t0 + 1.5},
    )


def _lines(t0: float) -> list[str]:
    git, render = "event=git args=%s rc=%s elapsed_s=%.3f", "event=render kind=%s elapsed_s=%.3f"
    done = "event=reconciled cluster=%s app=%s commit=%s seconds=%.3f"
    return [
        *_json_log(
            [
                (t0 + 0.15, git, ("ls-remote origin", 0, 0.08)),
                (t0 + 0.35, git, ("fetch --quiet --no-tags", 0, 0.12)),
                (t0 + 0.40, git, ("show -s --format=%ct", 0, 0.01)),
                (t0 + 0.50, render, ("kustomize", 0.10)),
                (t0 + 1.20, done, ("a", "web", SHA[:12], 1.00)),
                (t0 + 1.70, done, ("b", "web", SHA[:12], 1.30)),
                (t0 + 1.80, done, ("c", "web", "ffffffffffff", 0.50)),  # another commit
                (t0 + 2.50, done, ("a", "web", SHA[:12], 0.01)),  # a later no-op of the same
            ]
        ),
        "Traceback (most recent call last):",  # not JSON: skipped
    ]


def test_breakdown_phases_add_up_to_the_latency() -> None:
    commit = _commit()
    t0 = commit.push_start
    events = breakdown.parse_log(_lines(t0))
    assert [e.event for e in events][:2] == ["git", "git"]
    assert events[0].t == pytest.approx(t0 + 0.15, abs=0.002)
    row = breakdown.breakdown(commit, events, until=t0 + 5)
    a, b = row["clusters"]["a"], row["clusters"]["b"]
    assert a["push"] == pytest.approx(0.05, abs=0.003)
    assert a["webhook"] == pytest.approx(0.02, abs=0.003)  # push end -> ls-remote start
    assert a["listing"] == pytest.approx(0.08, abs=0.003)
    assert a["queue"] == pytest.approx(0.05, abs=0.003)  # a's worker started at t0 + 0.20
    assert a["fetch"] == pytest.approx(0.15, abs=0.003)
    assert a["render"] == pytest.approx(0.15, abs=0.003)
    assert a["apply"] == pytest.approx(0.50, abs=0.003)
    assert a["after_seen_s"] == pytest.approx(0.20, abs=0.003)
    # b's worker started (t0 + 0.40) after the fetch ended: b paid no fetch
    assert b["fetch"] == 0.0
    assert b["queue"] == pytest.approx(0.25, abs=0.003)
    for phases in (a, b):
        assert sum(phases[p] for p in breakdown.PHASES) == pytest.approx(phases["total"])
    assert row["reconciles"] == 3
    assert row["reconcile_s"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.3)}
    assert row["git_processes"] == 3
    assert row["git_by_op"] == {"fetch": 1, "ls-remote": 1, "show": 1}
    assert row["renders"] == 1
    assert row["webhook_round_trip_s"] == pytest.approx(0.15)
    summary = breakdown.summarise([row])
    assert summary["commits"] == 1
    assert summary["slowest_cluster_median_s"]["total"] == pytest.approx(1.5)
    assert summary["per_cluster_median_s"]["total"] == pytest.approx(1.25)
    assert summary["listing_s"] == pytest.approx(0.08)


def test_breakdown_of_a_commit_the_log_does_not_mention_is_all_apply() -> None:
    commit = _commit()
    row = breakdown.breakdown(commit, [], until=commit.push_start + 5)
    a = row["clusters"]["a"]
    assert a["apply"] == pytest.approx(1.0 - 0.05)
    assert a["listing"] == a["fetch"] == a["render"] == 0.0
    assert row["listing_s"] is None


def test_block_figures_and_flux_over_fleet() -> None:
    def rnd(system: str, index: int, values: dict[str, float]) -> flux_side_by_side.Round:
        r = flux_side_by_side.Round(0, index, system, f"value:v{index}", "s" * 40)
        r.latency = values
        return r

    rounds = [
        rnd("fleet", 1, {"a": 0.2, "b": 0.4}),
        rnd("flux", 2, {"a": 1.0, "b": 2.0}),
        rnd("fleet", 3, {"a": 0.2, "b": 0.4}),
        rnd("flux", 4, {"a": 1.0, "b": 2.0}),
    ]
    figs = flux_side_by_side.block_figures(rounds)
    assert figs["fleet"]["p50"] == pytest.approx(0.3)
    assert figs["flux"]["all_converged_p50"] == pytest.approx(2.0)
    over = flux_side_by_side.ratios(figs)
    assert over["p50"] == pytest.approx(1.5 / 0.3)
    assert over["all_converged_p50"] == pytest.approx(2.0 / 0.4)


def test_go_durations() -> None:
    assert timeline.go_duration("714.274683ms") == pytest.approx(0.714274683)
    assert timeline.go_duration("1m2.5s") == pytest.approx(62.5)
    assert timeline.go_duration("850µs") == pytest.approx(0.00085)
    with pytest.raises(ValueError, match="not a Go duration"):
        timeline.go_duration("1h0m0s, next")


def _flux_line(t: float, msg: str, **fields: object) -> str:
    stamp = datetime.datetime.fromtimestamp(t, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return json.dumps({"level": "info", "ts": stamp[:-3] + "Z", "msg": msg, **fields})


def test_flux_round_split_from_the_controllers_logs() -> None:
    t0 = 1_800_000_000.0
    source = timeline.parse_lines([
        _flux_line(t0 - 5, "stored artifact for commit 'bench: value:v3'"),  # an older round
        _flux_line(t0 + 0.30, "stored artifact for commit 'bench: value:v5'"),
        "not json",
    ])  # fmt: skip
    old, new = "main@sha1:" + "e" * 40, "main@sha1:" + SHA
    kustomize = timeline.parse_lines([
        # the Receiver's annotation: a pass over the old revision first, then the new one
        _flux_line(t0 + 0.50, "server-side apply completed", name="app-a", reconcileID="r1"),
        _flux_line(t0 + 0.55, "Reconciliation finished in 400ms, next run in 1h0m0s",
                   name="app-a", reconcileID="r1", revision=old),
        _flux_line(t0 + 1.20, "server-side apply completed", name="app-a", reconcileID="r2"),
        _flux_line(t0 + 1.30, "Reconciliation finished in 700ms, next run in 1h0m0s",
                   name="app-a", reconcileID="r2", revision=new),
    ])  # fmt: skip
    times = {
        "push_start": t0, "push_end": t0 + 0.05, "trigger_answered": t0 + 0.10,
        "seen:a": t0 + 1.25, "seen:b": t0 + 2.0,
    }  # fmt: skip
    split = timeline.split_round(
        times=times, subject="bench: value:v5", sha=SHA,
        kustomizations={"a": "app-a", "b": "app-b"}, source=source, kustomize=kustomize,
    )  # fmt: skip
    a = split["a"]
    assert a["trigger"] == pytest.approx(0.05, abs=0.003)
    assert a["source"] == pytest.approx(0.20, abs=0.003)
    assert a["queue"] == pytest.approx(0.30, abs=0.003)  # r2 began at t0 + 0.60
    assert a["apply"] == pytest.approx(0.60, abs=0.003)
    assert a["watch"] == pytest.approx(0.05, abs=0.003)
    b = split["b"]  # no line of its own: everything after the artifact is its watch
    assert b["queue"] == b["apply"] == 0.0
    assert b["watch"] == pytest.approx(1.70, abs=0.003)
    for phases in (a, b):
        assert sum(phases[p] for p in timeline.FLUX_PHASES) == pytest.approx(phases["total"])
    summary = breakdown.summarise([{"clusters": split}], phases=timeline.FLUX_PHASES)
    assert summary["slowest_cluster_median_s"]["total"] == pytest.approx(2.0)
