"""API requests as each apiserver counts them: ``apiserver_request_total`` from its ``/metrics``.

A :class:`Snapshot` is every series of that counter on one apiserver (labels verb, resource,
subresource, code...); the difference of two snapshots is what happened between them, whoever
made the requests. The kit's own components (controller-manager, scheduler, kwok) talk to the
apiserver all the time, so a bench measures the same window twice: once with the hub running,
once with the hub's process stopped (SIGSTOP), and subtracts. Writes are counted on the app's
own resources (``configmaps``, ``services``, ``deployments``, ``namespaces``) where the kit's
components write nothing, so a hub write there cannot hide in background noise.

Two kinds of request a client makes by the clock, not per resync, are told apart so a bench can
report them on their own: **probes** (``GET`` of the non-resource paths ``/readyz``, ``/livez``,
``/healthz``: the hub's liveness probe) and **watches** (verb ``WATCH``, counted by the apiserver
when a watch ends, i.e. once per renewal).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes_asyncio import config
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["APP_RESOURCES", "PROBE_PATHS", "WRITE_VERBS", "Delta", "Snapshot", "scrape"]

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE"})
APP_RESOURCES = frozenset({"configmaps", "services", "deployments", "namespaces"})
PROBE_PATHS = frozenset({"/readyz", "/livez", "/healthz"})  # a non-resource path's series

SeriesKey = tuple[str, str, str, str]  # verb, resource, subresource, code


@dataclass(frozen=True)
class Snapshot:
    counts: Counter[SeriesKey] = field(default_factory=Counter)


@dataclass(frozen=True)
class Delta:
    """Requests between two snapshots."""

    counts: Counter[SeriesKey]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def app_writes(self) -> int:
        return sum(
            n
            for (verb, resource, sub, _), n in self.counts.items()
            if verb in WRITE_VERBS and resource in APP_RESOURCES and not sub
        )

    @property
    def app_reads(self) -> int:
        return sum(
            n
            for (verb, resource, _, _), n in self.counts.items()
            if verb not in WRITE_VERBS and resource in APP_RESOURCES
        )

    @property
    def probes(self) -> int:
        """``GET /readyz`` and the like (the apiserver labels a non-resource request by its path,
        in ``subresource``, with no resource)."""
        return sum(
            n
            for (verb, resource, sub, _), n in self.counts.items()
            if verb == "GET" and not resource and sub in PROBE_PATHS
        )

    @property
    def watches(self) -> int:
        """Watches that ended (renewals) between the snapshots."""
        return sum(n for (verb, _, _, _), n in self.counts.items() if verb == "WATCH")

    def resource_requests(self, *, besides: frozenset[str] = frozenset()) -> int:
        """Requests on any resource (any verb), the resources `besides` aside; non-resource
        paths (probes, discovery, ``/metrics``) are not counted."""
        return sum(
            n
            for (_, resource, _, _), n in self.counts.items()
            if resource and resource not in besides
        )

    def by_verb(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (verb, resource, sub, _), n in self.counts.items():
            out[f"{verb} {resource}{'/' + sub if sub else ''}"] += n
        return {k: v for k, v in sorted(out.items()) if v}

    def __sub__(self, other: Delta) -> Delta:
        result = Counter(self.counts)
        result.subtract(other.counts)
        return Delta(result)


def parse(text: str) -> Snapshot:
    counts: Counter[SeriesKey] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            key = (
                labels.get("verb", ""),
                labels.get("resource", ""),
                labels.get("subresource", ""),
                labels.get("code", ""),
            )
            counts[key] += int(sample.value)
    return Snapshot(counts)


async def scrape(kubeconfig: Path) -> Snapshot:
    """One GET of ``/metrics`` (it counts itself: one ``GET`` of no resource, in both windows)."""
    return parse(await fetch(kubeconfig))


async def fetch(kubeconfig: Path) -> str:
    """The text of one GET of ``/metrics`` (parse it with :func:`parse`)."""
    async with await config.new_client_from_config(config_file=str(kubeconfig)) as api:
        api.user_agent = "fleet-bench-metrics"
        response = await api.call_api(
            "/metrics",
            "GET",
            auth_settings=["BearerToken"],
            _preload_content=False,
            header_params={"Accept": "text/plain"},
        )
        try:
            return str(await response.text())
        finally:
            response.release()


def delta(before: Snapshot, after: Snapshot) -> Delta:
    result = Counter(after.counts)
    result.subtract(before.counts)
    return Delta(Counter({k: v for k, v in result.items() if v}))
