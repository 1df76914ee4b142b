"""The pure helpers of the drift and no-op benches: reading the hub's log, grouping the edits,
and telling probes and watch renewals from the rest of an apiserver's request counts.

The log lines are made by fleet's own formatter (:class:`fleet.logs.Formatter`, JSON), so a
change of the hub's log format that the drift bench would no longer read fails here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bench import apicount
from bench.drift_latency import DriftSeen, Edit, HubLog, parse_drift_seen, report
from fleet import logs


def _line(template: str, *args: object, created: float = 1764595819.25) -> str:
    record = logging.LogRecord("fleet.hub.cells", logging.INFO, __file__, 1, template, args, None)
    record.created = created
    record.msecs = (created % 1) * 1000
    return logs.Formatter(logs.Format.JSON).format(record)


def test_drift_seen_is_read_from_the_hubs_json_lines_and_nothing_else() -> None:
    lines = [
        _line("event=drift_seen cluster=%s app=%s objects=%d", "bench-2", "web", 3),
        _line("event=synced cluster=%s app=%s", "bench-2", "web"),  # another event
        "not json at all, drift_seen",
        '{"event": "drift_seen"}',  # no ts, no cluster: skipped, not a crash
        _line("event=drift_seen cluster=%s app=%s objects=%d", "bench-1", "web-manual", 1,
              created=1764595820.5),
    ]  # fmt: skip
    found = parse_drift_seen(lines)
    assert found == [
        DriftSeen(time=1764595819.25, cluster="bench-2", app="web", objects=3),
        DriftSeen(time=1764595820.5, cluster="bench-1", app="web-manual", objects=1),
    ]


def test_hub_log_reads_whole_lines_only_as_the_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "hub.log"
    line = _line("event=drift_seen cluster=%s app=%s objects=%d", "bench-1", "web", 1)
    path.write_text(line[:20])  # the hub is half-way through writing it
    log = HubLog(path)
    assert log.read() == []
    with path.open("a") as stream:
        stream.write(line[20:] + "\n" + _line("event=other") + "\n")
    assert [d.cluster for d in log.read()] == ["bench-1"]
    assert log.position == 1
    assert log.count("bench-1", "web", after=0) == 1
    assert log.count("bench-1", "web", after=1) == 0


@pytest.mark.anyio
async def test_hub_log_wait_finds_the_first_detection_past_a_position(tmp_path: Path) -> None:
    path = tmp_path / "hub.log"
    old = _line("event=drift_seen cluster=%s app=%s objects=%d", "bench-1", "web", 1, created=1.0)
    path.write_text(old + "\n")
    log = HubLog(path)
    mark = log.position
    with path.open("a") as stream:
        for cluster, created in (("bench-2", 2.0), ("bench-1", 3.0), ("bench-1", 4.0)):
            stream.write(
                _line("event=drift_seen cluster=%s app=%s objects=%d", cluster, "web", 1,
                      created=created) + "\n"
            )  # fmt: skip
    found, count = await log.wait("bench-1", "web", after=mark, limit=1.0)
    assert found is not None and found.time == 3.0
    assert count == 2
    missing, none = await log.wait("bench-3", "web", after=mark, limit=0.05)
    assert (missing, none) == (None, 0)


def _edit(mode: str, kind: str, *, detect: float | None, heal: float | None = None) -> Edit:
    answered = 100.0
    return Edit(
        index=0, mode=mode, kind=kind, cluster="c", answered=answered, sent=answered - 0.01,
        detected=None if detect is None else answered + detect, edit_seen=answered + 0.005,
        healed=None if heal is None else answered + heal,
        sync_after_detect="OutOfSync" if mode == "manual" and detect is not None else "",
        held=True if mode == "manual" else None, sync_before="Synced", detections=1,
    )  # fmt: skip


def test_report_groups_edits_by_mode_and_kind_and_counts_misses() -> None:
    edits = [
        _edit("heal", "value", detect=0.01, heal=0.10),
        _edit("heal", "value", detect=0.03, heal=0.30),
        _edit("heal", "delete", detect=None, heal=None),
        _edit("manual", "replicas", detect=0.02),
        _edit("manual", "replicas", detect=None),
    ]
    out = report(edits)
    value = out["heal"]["value"]
    assert value["edits"] == 2
    assert value["detected"]["p50"] == pytest.approx(0.02)
    assert value["detected_from_sent"]["p50"] == pytest.approx(0.03)
    assert value["detected_after_watcher"]["p50"] == pytest.approx(0.015)
    assert value["edit_round_trip"]["max"] == pytest.approx(0.01)
    assert value["healed"]["max"] == pytest.approx(0.30)
    assert out["heal"]["delete"]["not_detected"] == 1
    assert out["heal"]["delete"]["not_healed"] == 1
    assert out["heal"]["delete"]["detected"] == {"n": 0}
    assert out["heal"]["all"]["edits"] == 3
    replicas = out["manual"]["replicas"]
    assert replicas["not_detected"] == 1
    assert replicas["out_of_sync_after_detect"] == 1
    assert replicas["not_healed_after_hold"] == 2
    assert "healed" not in replicas
    assert out["manual"]["value"]["edits"] == 0


_METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",\
subresource="/readyz",verb="GET",version=""} 22
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",\
subresource="/openapi/v3",verb="GET",version=""} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",\
resource="configmaps",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",\
resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",\
resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 1
"""


def test_apicount_tells_probes_and_watch_renewals_from_reads_and_writes() -> None:
    delta = apicount.delta(apicount.Snapshot(), apicount.parse(_METRICS))
    assert delta.total == 33
    assert delta.probes == 22  # /readyz; /openapi/v3 is discovery, not a probe
    assert delta.watches == 2
    assert delta.app_reads == 5  # the LIST and the WATCH of configmaps
    assert delta.app_writes == 1
    assert delta.resource_requests() == 6  # WATCH, LIST, APPLY; no probe, no discovery
    assert delta.resource_requests(besides=frozenset({"configmaps"})) == 1
