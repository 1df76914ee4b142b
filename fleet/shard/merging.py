"""The fleet-wide answer of a sharded hub, merged from what each replica answered (pure).

Each replica knows the records of only the clusters it holds, so the replica asked for
``/api/status`` asks its live peers for theirs (:mod:`fleet.shard.front`) and merges:

- targets, clusters and repositories: the union, each item tagged with the replica that
  answered it (``"replica"``); a cluster reported by two replicas (a hand-over in flight) keeps
  the answer of its lease holder;
- every cluster entry of the fleet that no answering replica reported is a cluster row in state
  ``unknown`` naming why (its holder did not answer, and the error; or no replica holds it), and
  its replica's silence is one of the ``problems``: never green on doubt, and a replica that is
  down never makes its clusters vanish from the board;
- ``summary`` computed again over the merged rows (the same keys as one hub's), and
  ``replicas``: who answered, and what the others said.

Events are merged newest first; control answers (a sync, a refresh, a suspension) list every
target with the replica that acted on it, and each replica that failed with its error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "merge_control", "merge_events", "merge_status", "summary"]

_NOT_READY_SHOWN = 50


@dataclass(frozen=True)
class Answer:
    """What one replica answered: its JSON body, or why there was none."""

    replica: str
    body: Mapping[str, Any] | None = None
    error: str = ""
    url: str = ""

    @property
    def answered(self) -> bool:
        return self.body is not None


def summary(
    apps: Iterable[Mapping[str, Any]],
    clusters: Iterable[Mapping[str, Any]],
    *,
    config_error: str,
    problems: int,
) -> dict[str, Any]:
    """The board's summary (:func:`fleet.report.status.summary`'s keys) over merged rows."""
    rows = list(apps)
    states = list(clusters)
    not_ready = [f"{a.get('app')}@{a.get('cluster')}" for a in rows if not a.get("ready")]
    down = [str(c.get("name")) for c in states if c.get("state") != "ready"]
    return {
        "targets": len(rows),
        "ready": len(rows) - len(not_ready),
        "not_ready": not_ready[:_NOT_READY_SHOWN],
        "out_of_sync": sum(a.get("sync") == "OutOfSync" for a in rows),
        "unknown": sum(a.get("sync") == "Unknown" for a in rows),
        "degraded": sum(a.get("health") == "Degraded" for a in rows),
        "clusters_not_ready": down,
        "problems": problems,
        "green": not not_ready and not down and not config_error and not problems,
    }


def _tagged(items: object, replica: str) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    return [{**item, "replica": replica} for item in items if isinstance(item, dict)]


def _prefer(
    found: dict[Any, dict[str, Any]], key: Any, item: dict[str, Any], holders: Mapping[str, str]
) -> None:
    """Keep `item` under `key` unless the one already there comes from the cluster's holder."""
    was = found.get(key)
    holder = holders.get(str(item.get("cluster", item.get("name", ""))))
    if was is None or (was["replica"] != holder and item["replica"] == holder):
        found[key] = item


def _why_unknown(cluster: str, holder: str, answers: Mapping[str, Answer]) -> str:
    if not holder:
        return f"cluster {cluster}: no replica holds its lease (see /api/shards); status unknown"
    answer = answers.get(holder)
    if answer is None:
        return (
            f"cluster {cluster}: held by replica {holder}, which is not a live member (its lease "
            "has not expired yet); status unknown until another replica takes it"
        )
    return (
        f"cluster {cluster}: replica {holder}, which holds it, did not answer "
        f"({answer.error or 'no answer'}); status unknown"
    )


def merge_status(
    answers: Iterable[Answer],
    *,
    me: str,
    entries: Iterable[str],
    holders: Mapping[str, str],
) -> dict[str, Any]:
    """The fleet-wide ``/api/status`` from every replica's `answers` (this replica `me` first:
    its config and parents are the ones shown), `entries` every cluster entry of the fleet,
    `holders` each cluster lease's holder."""
    by_replica = {a.replica: a for a in answers}
    apps: dict[tuple[str, str], dict[str, Any]] = {}
    clusters: dict[str, dict[str, Any]] = {}
    repos: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    config_errors: list[str] = []
    local = by_replica.get(me)
    base = dict(local.body) if local is not None and local.body is not None else {}
    for answer in by_replica.values():
        body = answer.body
        if body is None:
            if answer.replica != me:
                problems.append(
                    f"replica {answer.replica} did not answer ({answer.error}): the status of "
                    "its clusters is unknown"
                )
            continue
        for item in _tagged(body.get("apps"), answer.replica):
            _prefer(apps, (str(item.get("app")), str(item.get("cluster"))), item, holders)
        for item in _tagged(body.get("clusters"), answer.replica):
            _prefer(clusters, str(item.get("name")), item, holders)
        for item in _tagged(body.get("repos"), answer.replica):
            name = str(item.get("repo"))
            if name not in repos or item.get("state") != "ok":  # a failed listing wins
                repos[name] = item
        for problem in body.get("problems") or []:
            if problem not in problems:
                problems.append(str(problem))
        error = str(body.get("config_error") or "")
        if error and error not in config_errors:
            config_errors.append(error)
    for name in sorted(set(entries) - set(clusters)):
        holder = holders.get(name, "")
        clusters[name] = {
            "name": name,
            "state": "unknown",
            "labels": {},
            "error": _why_unknown(name, holder, by_replica),
            "since": None,
            "replica": holder,
        }
    config_error = "; ".join(config_errors)
    rows = [apps[k] for k in sorted(apps)]
    states = [clusters[k] for k in sorted(clusters)]
    base.update(
        summary=summary(rows, states, config_error=config_error, problems=len(problems)),
        clusters=states,
        repos=[repos[k] for k in sorted(repos)],
        apps=rows,
        config_error=config_error,
        problems=problems,
        replicas=replicas(by_replica.values()),
    )
    return base


def replicas(answers: Iterable[Answer]) -> dict[str, dict[str, Any]]:
    """Who answered, where, and what the others said."""
    return {
        a.replica: {"answered": a.answered, "url": a.url, "error": a.error}
        for a in sorted(answers, key=lambda a: a.replica)
    }


def merge_events(answers: Iterable[Answer], *, limit: int) -> dict[str, Any]:
    """The fleet's recent events, newest first, at most `limit`."""
    found: list[dict[str, Any]] = []
    answered = list(answers)
    for answer in answered:
        if answer.body is not None:
            found += _tagged(answer.body.get("events"), answer.replica)
    found.sort(key=lambda e: float(e.get("time") or 0.0), reverse=True)
    return {"events": found[:limit], "replicas": replicas(answered)}


def merge_control(answers: Iterable[Answer], *, verb: str) -> dict[str, Any]:
    """A control call's answers: the targets under `verb` (``syncing``, ``refreshed``,
    ``suspended``, ``resumed``) each with the replica that acted; other keys from the first
    answer (``prune``)."""
    keys: list[dict[str, Any]] = []
    rest: dict[str, Any] = {}
    answered = list(answers)
    for answer in answered:
        if answer.body is None:
            continue
        keys += _tagged(answer.body.get(verb), answer.replica)
        for key, value in answer.body.items():
            if key not in (verb, "replica", "replicas", "error"):
                rest.setdefault(key, value)
    keys.sort(key=lambda k: (str(k.get("cluster")), str(k.get("app"))))
    return {**rest, verb: keys, "replicas": replicas(answered)}
