"""Drift latency: from a hand edit of a managed object to the hub's detection, and to healed.

The hub runs two apps from the same kustomization on every cluster, converged and idle:
``web`` (namespace ``bench-drift``, selfHeal on) and ``web-manual`` (``bench-drift-manual``,
selfHeal off). At random moments (a uniform pause of ``--gap-min``..``--gap-max`` seconds
before each, so edits fall at any phase of the hub's timers) an independent client, with a user
agent of its own, makes one hand edit of a managed object on a random cluster, one edit at a
time:

- ``value``: a merge patch of the ``settings`` ConfigMap's ``data.value``;
- ``replicas``: a merge patch of the ``web`` Deployment's ``spec.replicas`` (1 -> 2..5);
- ``delete``: the ``settings`` ConfigMap deleted.

Three clocks, all on this machine's wall clock (the hub is a subprocess on the same host):

- **edit**: when the apiserver answered the edit (the bench's client). The apiserver sends the
  watch event and the answer at about the same moment, so on a loaded machine the hub may see
  the event before the bench reads the answer: a detection a few milliseconds *before* the edit
  is possible and kept as measured. The send time is kept too: detection from the send is the
  upper bound (it holds the request's own round trip, also reported). The independent watcher's
  receipt of the edit's own event is kept as well: detection minus it is what the hub adds to a
  bare watch of the object (cache, compare, log), both watchers getting the same event;
- **detected**: the hub's ``event=drift_seen`` log line for that target (its cell compared the
  cache event with what the target applied), millisecond timestamps, JSON log format. With
  selfHeal on, the ``Drift`` event of ``/api/events`` is recorded too (the hub raises it only when
  a target was not already drifted, so it is a cross-check, not the measure);
- **healed** (selfHeal on): the independent watcher (:mod:`bench.watcher`, with its timeline)
  sees the edited object served as applied again (value ``v0``, one replica, re-created), after
  it saw the edit itself. The hub's own ``Healed`` event time is recorded next to it.

With selfHeal off, each edit must be detected, the target must read OutOfSync on
``/api/status``, and after ``--hold`` seconds the watcher must have seen no heal; then the bench
puts the object back by hand and waits until the watcher serves it, so every edit starts from
the applied state. The target's sync just before each edit is recorded (``sync_before``): it
shows whether putting an object back by hand makes a target Synced again before the next resync.

The resync interval is the hub's default (300 s) unless ``--resync-interval`` says otherwise, so
detection is the watch path, not the periodic resync. Results: median/p90/p99 per kind and mode,
every edit, the hub's CPU seconds per edit; ``bench/results/drift_latency.json``.

    python -m bench.drift_latency --clusters 4 --objects 50 --edits 20 --manual-edits 10
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from kubernetes_asyncio import client, config

from bench import figures
from bench.hubproc import HubProcess
from bench.rig import Rig, add_rig_arguments, ensure_namespaces
from bench.watcher import Sighting, Watcher

__all__ = [
    "KINDS",
    "DriftSeen",
    "Edit",
    "HubLog",
    "main",
    "parse_drift_seen",
    "report",
]

KINDS = ("value", "replicas", "delete")
NS_HEAL, NS_MANUAL = "bench-drift", "bench-drift-manual"
APP_HEAL, APP_MANUAL = "web", "web-manual"
EDITOR = "fleet-bench-editor"
APPLIED_VALUE, APPLIED_REPLICAS = "v0", 1  # what bench.workload's first commit applies


# -- the hub's log: when it saw each drift --------------------------------------------------------


@dataclass(frozen=True)
class DriftSeen:
    """One ``event=drift_seen`` line of the hub: when its cell saw `objects` of a target drift."""

    time: float
    cluster: str
    app: str
    objects: int


def _timestamp(text: str) -> float:
    """``2026-12-01T13:30:19.123Z`` (the hub's ``ts``) as seconds since the epoch."""
    when = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=datetime.UTC).timestamp()


def parse_drift_seen(lines: Iterable[str]) -> list[DriftSeen]:
    """The ``drift_seen`` events among JSON log lines (any other line, JSON or not, is skipped)."""
    out = []
    for line in lines:
        if '"drift_seen"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("event") != "drift_seen":
            continue
        try:
            out.append(
                DriftSeen(
                    time=_timestamp(str(record["ts"])),
                    cluster=str(record["cluster"]),
                    app=str(record["app"]),
                    objects=int(record.get("objects", 0)),
                )
            )
        except (KeyError, ValueError):
            continue
    return out


class HubLog:
    """The hub's log file read as it grows: every ``drift_seen`` so far, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[DriftSeen] = []
        self._offset = 0
        self._partial = b""

    def read(self) -> list[DriftSeen]:
        with self.path.open("rb") as stream:
            stream.seek(self._offset)
            chunk = stream.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        self.seen += parse_drift_seen(line.decode(errors="replace") for line in lines)
        return self.seen

    @property
    def position(self) -> int:
        return len(self.read())

    async def wait(
        self, cluster: str, app: str, *, after: int, limit: float
    ) -> tuple[DriftSeen | None, int]:
        """The first detection of (cluster, app) at or past `after` (None after `limit` s), and
        how many detections of that target the log holds past `after` by then."""
        deadline = time.monotonic() + limit
        while True:
            mine = [d for d in self.read()[after:] if (d.cluster, d.app) == (cluster, app)]
            if mine:
                return mine[0], len(mine)
            if time.monotonic() > deadline:
                return None, 0
            await anyio.sleep(0.01)

    def count(self, cluster: str, app: str, *, after: int) -> int:
        return sum(1 for d in self.read()[after:] if (d.cluster, d.app) == (cluster, app))


# -- one edit -------------------------------------------------------------------------------------


@dataclass
class Edit:
    """One hand edit and what followed it (times are wall-clock seconds; None: not seen)."""

    index: int
    mode: str  # "heal" (selfHeal on) or "manual" (selfHeal off)
    kind: str  # value | replicas | delete
    cluster: str
    sync_before: str = ""
    sent: float = 0.0
    answered: float = 0.0
    edit_seen: float | None = None  # the watcher receives the edit's own event
    detected: float | None = None  # the hub's drift_seen line
    detections: int = 0  # drift_seen lines of this target until the edit ended
    drift_event: float | None = None  # the hub's Drift event (selfHeal on)
    healed: float | None = None  # the watcher sees it as applied again
    healed_event: float | None = None  # the hub's Healed event
    sync_after_detect: str = ""  # the target's sync on /api/status once detected
    held: bool | None = None  # selfHeal off: still edited after the hold
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def detect_s(self) -> float | None:
        return None if self.detected is None else self.detected - self.answered

    @property
    def heal_s(self) -> float | None:
        return None if self.healed is None else self.healed - self.answered


def _span(group: Iterable[Edit], end: str, start: str) -> dict[str, float]:
    """The summary of ``edit.<end> - edit.<start>`` over the edits where both were seen."""
    values = []
    for edit in group:
        b, a = getattr(edit, end), getattr(edit, start)
        if a is not None and b is not None:
            values.append(float(b) - float(a))
    return figures.summary(values)


def report(edits: list[Edit]) -> dict[str, Any]:
    """Per mode and kind (and ``all``): detection and heal summaries, misses and checks."""
    out: dict[str, Any] = {}
    for mode in ("heal", "manual"):
        of_mode = [e for e in edits if e.mode == mode]
        groups = {kind: [e for e in of_mode if e.kind == kind] for kind in KINDS}
        groups["all"] = of_mode
        out[mode] = {}
        for name, group in groups.items():
            row: dict[str, Any] = {
                "edits": len(group),
                "detected": _span(group, "detected", "answered"),
                "detected_from_sent": _span(group, "detected", "sent"),
                "detected_after_watcher": _span(group, "detected", "edit_seen"),
                "edit_round_trip": _span(group, "answered", "sent"),
                "not_detected": sum(1 for e in group if e.detected is None),
                "detections_per_edit": (
                    sum(e.detections for e in group) / len(group) if group else 0.0
                ),
            }
            if mode == "heal":
                row["healed"] = _span(group, "healed", "answered")
                row["healed_from_sent"] = _span(group, "healed", "sent")
                row["not_healed"] = sum(1 for e in group if e.healed is None)
                row["drift_event"] = _span(group, "drift_event", "answered")
                row["healed_event"] = _span(group, "healed_event", "answered")
            else:
                row["out_of_sync_after_detect"] = sum(
                    1 for e in group if e.sync_after_detect == "OutOfSync"
                )
                row["not_healed_after_hold"] = sum(1 for e in group if e.held)
                row["synced_before_edit"] = sum(1 for e in group if e.sync_before == "Synced")
            out[mode][name] = row
    return out


# -- the rig's pieces: the hub's API, the editor ----------------------------------------------


def _fleet_yaml(repo_url: str) -> str:
    source = f'{{repoURL: "{repo_url}", targetRevision: main, path: "app"}}'
    return (
        "apps:\n"
        f"  - name: {APP_HEAL}\n    source: {source}\n"
        f"    destination: {{namespace: {NS_HEAL}}}\n"
        "    syncPolicy: {prune: true, selfHeal: true}\n"
        f"  - name: {APP_MANUAL}\n    source: {source}\n"
        f"    destination: {{namespace: {NS_MANUAL}}}\n"
        "    syncPolicy: {prune: true, selfHeal: false}\n"
    )


class HubApi:
    """``/api/status`` and ``/api/events`` of the hub on 127.0.0.1 (no token: loopback)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HubApi:
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._http is not None
        await self._http.close()

    async def _get(self, path: str, **params: str) -> Any:
        assert self._http is not None
        async with self._http.get(self.base + path, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def targets(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(cluster, app) -> its record on ``/api/status``."""
        data = await self._get("/api/status")
        return {(a["cluster"], a["app"]): a for a in data["apps"]}

    async def sync_of(self, cluster: str, app: str) -> str:
        found = (await self.targets()).get((cluster, app))
        return "" if found is None else str(found["sync"])

    async def event_time(self, cluster: str, app: str, kind: str, *, since: float) -> float | None:
        """The time of the earliest `kind` event of the target at or after `since`."""
        found = await self._get("/api/events", app=app, cluster=cluster, limit="50")
        events = found["events"]
        times = [float(e["time"]) for e in events if e["type"] == kind and e["time"] >= since]
        return min(times) if times else None


class Editor:
    """The independent hand: one kubernetes-asyncio client per cluster, its own user agent."""

    def __init__(self, kubeconfigs: dict[str, Path]) -> None:
        self.kubeconfigs = kubeconfigs
        self._apis: dict[str, client.ApiClient] = {}

    async def __aenter__(self) -> Editor:
        for name, path in self.kubeconfigs.items():
            api = await config.new_client_from_config(config_file=str(path))
            api.user_agent = EDITOR
            self._apis[name] = api
        return self

    async def __aexit__(self, *exc: object) -> None:
        for api in self._apis.values():
            await api.close()

    def core(self, cluster: str) -> client.CoreV1Api:
        return client.CoreV1Api(self._apis[cluster])

    def apps(self, cluster: str) -> client.AppsV1Api:
        return client.AppsV1Api(self._apis[cluster])

    async def edit(
        self, kind: str, cluster: str, namespace: str, *, tag: str, replicas: int
    ) -> tuple[float, float, dict[str, Any] | None]:
        """Make the edit; (sent, answered, the object as it was when it is a delete)."""
        saved: dict[str, Any] | None = None
        if kind == "delete":
            found = await self.core(cluster).read_namespaced_config_map("settings", namespace)
            saved = self._apis[cluster].sanitize_for_serialization(found)
        sent = time.time()
        if kind == "value":
            await self.core(cluster).patch_namespaced_config_map(
                "settings", namespace, {"data": {"value": tag}}
            )
        elif kind == "replicas":
            await self.apps(cluster).patch_namespaced_deployment(
                "web", namespace, {"spec": {"replicas": replicas}}
            )
        elif kind == "delete":
            await self.core(cluster).delete_namespaced_config_map("settings", namespace)
        else:
            raise ValueError(f"edit kind {kind!r}: use one of {', '.join(KINDS)}")
        return sent, time.time(), saved

    async def put_back(
        self, kind: str, cluster: str, namespace: str, saved: dict[str, Any] | None
    ) -> None:
        """Undo the edit by hand (selfHeal off: nobody else will)."""
        if kind == "value":
            await self.core(cluster).patch_namespaced_config_map(
                "settings", namespace, {"data": {"value": APPLIED_VALUE}}
            )
        elif kind == "replicas":
            await self.apps(cluster).patch_namespaced_deployment(
                "web", namespace, {"spec": {"replicas": APPLIED_REPLICAS}}
            )
        else:
            assert saved is not None
            meta = saved["metadata"]
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=meta["name"], namespace=namespace, labels=meta.get("labels"),
                    annotations=meta.get("annotations"),
                ),
                data=saved.get("data"),
            )  # fmt: skip
            await self.core(cluster).create_namespaced_config_map(namespace, body)


def _edited(
    kind: str, cluster: str, namespace: str, tag: str, replicas: int
) -> Callable[[Sighting], bool]:
    """The watcher's sighting of the edit itself."""

    def test(s: Sighting) -> bool:
        if (s.server, s.namespace) != (cluster, namespace):
            return False
        if kind == "value":
            return s.kind == "ConfigMap" and (s.obj.get("data") or {}).get("value") == tag
        if kind == "replicas":
            return s.kind == "Deployment" and (s.obj.get("spec") or {}).get("replicas") == replicas
        return s.kind == "ConfigMap" and s.type == "DELETED"

    return test


def _as_applied(kind: str, cluster: str, namespace: str) -> Callable[[Sighting], bool]:
    """The watcher's sighting of the object as the hub applied it."""

    def test(s: Sighting) -> bool:
        if (s.server, s.namespace) != (cluster, namespace) or s.type == "DELETED":
            return False
        if kind == "replicas":
            return (
                s.kind == "Deployment"
                and (s.obj.get("spec") or {}).get("replicas") == APPLIED_REPLICAS
            )
        return s.kind == "ConfigMap" and (s.obj.get("data") or {}).get("value") == APPLIED_VALUE

    return test


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Session:
    """A converged hub, its log and API, the watcher and the editor, for the edit loop."""

    hub: HubProcess
    log: HubLog
    api: HubApi
    watcher: Watcher
    editor: Editor
    args: argparse.Namespace
    rng: random.Random

    async def one(self, index: int, mode: str, kind: str, cluster: str) -> Edit:
        namespace, app = (NS_HEAL, APP_HEAL) if mode == "heal" else (NS_MANUAL, APP_MANUAL)
        edit = Edit(index, mode, kind, cluster)
        limit = self.args.limit
        tag, replicas = f"by-hand-{index}", self.rng.randint(2, 5)
        edit.sync_before = await self.api.sync_of(cluster, app)
        seen_at, logged_at = self.watcher.position, self.log.position
        edit.sent, edit.answered, saved = await self.editor.edit(
            kind, cluster, namespace, tag=tag, replicas=replicas
        )
        found, _ = await self.log.wait(cluster, app, after=logged_at, limit=limit)
        edit.detected = None if found is None else found.time
        if found is not None:
            edit.sync_after_detect = await self.api.sync_of(cluster, app)
        test = _edited(kind, cluster, namespace, tag, replicas)
        after, sighting = await self.watcher.wait_for(test, after=seen_at, limit=limit)
        edit.edit_seen = sighting.time
        back = _as_applied(kind, cluster, namespace)
        if mode == "heal":
            try:
                _, sighting = await self.watcher.wait_for(back, after=after + 1, limit=limit)
                edit.healed = sighting.time
            except TimeoutError:
                edit.healed = None
            edit.drift_event = await self.api.event_time(cluster, app, "Drift", since=edit.sent)
            edit.healed_event = await self._hub_healed(cluster, app, since=edit.sent)
        else:
            await anyio.sleep(self.args.hold)
            healed = any(back(s) for s in (self.watcher.timeline or [])[after + 1 :])
            edit.held = not healed
            edit.extra["sync_after_hold"] = await self.api.sync_of(cluster, app)
            await self.editor.put_back(kind, cluster, namespace, saved)
            await self.watcher.wait_for(back, after=after + 1, limit=limit)
        edit.detections = self.log.count(cluster, app, after=logged_at)
        return edit

    async def _hub_healed(self, cluster: str, app: str, *, since: float) -> float | None:
        """The hub's Healed event: it lands when the heal's sync ends, often after the watcher
        saw the object back, so wait for it a little."""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            found = await self.api.event_time(cluster, app, "Healed", since=since)
            if found is not None:
                return found
            await anyio.sleep(0.1)
        return None

    async def loop(self, mode: str, per_kind: int, names: list[str], start: int) -> list[Edit]:
        plan = [kind for kind in KINDS for _ in range(per_kind)]
        self.rng.shuffle(plan)
        edits = []
        for offset, kind in enumerate(plan):
            await anyio.sleep(self.rng.uniform(self.args.gap_min, self.args.gap_max))
            edit = await self.one(start + offset, mode, kind, self.rng.choice(names))
            edits.append(edit)
            print(f"  {_line(edit)}", flush=True)
        return edits


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _line(e: Edit) -> str:
    text = f"{e.mode} {e.kind} on {e.cluster}: detected {_ms(e.detect_s)}"
    if e.mode == "heal":
        return text + f", healed {_ms(e.heal_s)}"
    return text + f", {e.sync_after_detect}, held={e.held}"


async def _converged(api: HubApi, keys: list[tuple[str, str]], *, limit: float) -> None:
    """Every target Synced and Healthy, read from the hub (the watcher already saw the values)."""
    with anyio.fail_after(limit):
        while True:
            records = await api.targets()
            if all(records.get(k, {}).get("ready") for k in keys):
                return
            await anyio.sleep(0.5)


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    with Rig(
        root, count=args.clusters, objects=args.objects, provider_name=args.provider,
        clusters_from=args.clusters_from,
    ) as rig:  # fmt: skip
        names = sorted(rig.kubeconfigs)
        await ensure_namespaces(rig.kubeconfigs, [NS_HEAL, NS_MANUAL])
        hub = HubProcess(
            root / "hub", poll_interval=args.poll_interval, resync_interval=args.resync_interval,
            log_level="info", extra_args=["--log-format", "json"],
        )  # fmt: skip
        (root / "hub").mkdir(parents=True, exist_ok=True)
        hub.config.write_text(_fleet_yaml(rig.repo_url))
        rig.drop_clusters(hub.clusters, names)
        with hub:
            async with (
                Watcher(rig.kubeconfigs, timeline=True) as watcher,
                HubApi(hub.port) as api,
                Editor(rig.kubeconfigs) as editor,
            ):
                slots = [(n, ns) for n in names for ns in (NS_HEAL, NS_MANUAL)]
                await watcher.wait(slots, f"value:{APPLIED_VALUE}", limit=300)
                keys = [(n, a) for n in names for a in (APP_HEAL, APP_MANUAL)]
                await _converged(api, keys, limit=300)
                await anyio.sleep(args.settle)
                session = Session(
                    hub, HubLog(hub.log), api, watcher, editor, args, random.Random(args.seed)
                )
                cpu0 = hub.cpu_seconds()
                edits = await session.loop("heal", args.edits, names, 1)
                cpu_heal = hub.cpu_seconds() - cpu0
                cpu0 = hub.cpu_seconds()
                edits += await session.loop("manual", args.manual_edits, names, len(edits) + 1)
                cpu_manual = hub.cpu_seconds() - cpu0
                rss = hub.rss_mib()
    result = report(edits)
    result["edits"] = [{**asdict(e), "detect_s": e.detect_s, "heal_s": e.heal_s} for e in edits]
    result["hub"] = {
        "cpu_s_per_heal_edit": cpu_heal / max(1, args.edits * len(KINDS)),
        "cpu_s_per_manual_edit": cpu_manual / max(1, args.manual_edits * len(KINDS)),
        "rss_mib": rss,
    }
    result["clusters"] = len(names)
    result["objects"] = args.objects
    result["config"] = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
    }
    return result


def print_tables(result: dict[str, Any]) -> None:
    def cells(s: dict[str, float]) -> list[str]:
        if not s.get("n"):
            return ["-", "-", "-"]
        return [f"{s[p] * 1000:.0f}" for p in ("p50", "p90", "p99")]

    rows = []
    for kind, row in result["heal"].items():
        rows.append(
            [kind, row["edits"], *cells(row["detected"]), *cells(row["healed"]),
             cells(row["edit_round_trip"])[0], cells(row["detected_from_sent"])[0],
             cells(row["detected_after_watcher"])[0],
             f"{row['not_detected']} / {row['not_healed']}", f"{row['detections_per_edit']:.1f}"]
        )  # fmt: skip
    print(
        figures.table(
            ["selfHeal on", "edits", "detected p50 ms", "p90", "p99", "healed p50 ms", "p90",
             "p99", "edit round trip p50 ms", "detected from send p50 ms",
             "detected after the watcher p50 ms",
             "missed (detect / heal)", "drift_seen lines per edit"],
            rows,
        )
    )  # fmt: skip
    rows = []
    for kind, row in result["manual"].items():
        n = row["edits"]
        rows.append(
            [kind, n, *cells(row["detected"]), cells(row["detected_from_sent"])[0],
             cells(row["detected_after_watcher"])[0],
             row["not_detected"],
             f"{row['out_of_sync_after_detect']}/{n}", f"{row['not_healed_after_hold']}/{n}",
             f"{row['synced_before_edit']}/{n}"]
        )  # fmt: skip
    print(
        figures.table(
            ["selfHeal off", "edits", "detected p50 ms", "p90", "p99",
             "detected from send p50 ms", "detected after the watcher p50 ms", "missed",
             "OutOfSync once detected", "not healed after hold", "Synced before the edit"],
            rows,
        )
    )  # fmt: skip
    print("hub:", result["hub"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rig_arguments(p)
    p.add_argument("--clusters", type=int, default=4)
    p.add_argument("--objects", type=int, default=50)
    p.add_argument("--edits", type=int, default=20, help="selfHeal-on edits of each kind")
    p.add_argument("--manual-edits", type=int, default=10, help="selfHeal-off edits of each kind")
    p.add_argument("--gap-min", type=float, default=0.5, help="least pause before an edit, s")
    p.add_argument("--gap-max", type=float, default=3.0, help="longest pause before an edit, s")
    p.add_argument("--hold", type=float, default=3.0, help="selfHeal off: s to see no heal")
    p.add_argument("--poll-interval", type=float, default=5.0)
    p.add_argument("--resync-interval", type=float, default=300.0)
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--limit", type=float, default=60.0, help="give up on one edit after this")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--out", type=Path, default=Path("bench/results/drift_latency.json"))
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-drift-") as tmp:
        result = anyio.run(run, args, Path(tmp), backend="asyncio")
    print_tables(result)
    figures.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
