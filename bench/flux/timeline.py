"""Where a commit's time goes in Flux, from the controllers' own JSON logs (pure functions).

The same milestone cut as :mod:`bench.breakdown` uses for fleet, so the two tables compare
phase by phase. source-controller logs ``stored artifact for commit '<subject>'`` when the
commit's tarball is ready (the bench's commit subjects are unique: ``bench: value:v5``);
kustomize-controller logs, per Kustomization and reconcile (``reconcileID``), ``server-side apply
completed`` and then ``Reconciliation finished in <Go duration>`` with the ``revision``
(``main@sha1:<sha>``). Per cluster, in time order:

    push      git push itself
    trigger   push end -> the Receiver's annotations are all written
    source    -> the artifact is stored (clone, tarball, status)
    queue     -> kustomize-controller starts the reconcile that applies this revision
    apply     -> its server-side apply is completed (download, build, dry-run diff, apply)
    watch     -> the watcher sees the value (status writes and the watch event's way)

A missing or earlier milestone gives a zero phase; the phases add up to the latency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.breakdown import parse_ts

__all__ = ["FLUX_PHASES", "FluxLine", "go_duration", "parse_lines", "split_round"]

FLUX_PHASES = ("push", "trigger", "source", "queue", "apply", "watch")

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_FINISHED = re.compile(r"Reconciliation finished in (\S+),")
_STORED = re.compile(r"stored artifact for commit '(.*)'")


def go_duration(text: str) -> float:
    """A Go ``time.Duration`` string (``714.27ms``, ``1m2.5s``) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class FluxLine:
    """One JSON log line of a Flux controller."""

    t: float
    msg: str
    fields: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.fields.get("name", ""))


def parse_lines(lines: Iterable[str]) -> list[FluxLine]:
    out: list[FluxLine] = []
    for raw in lines:
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
            out.append(FluxLine(parse_ts(str(record["ts"])), str(record.get("msg", "")), record))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def split_round(
    *,
    times: Mapping[str, float],
    subject: str,
    sha: str,
    kustomizations: Mapping[str, str],
    source: Sequence[FluxLine],
    kustomize: Sequence[FluxLine],
) -> dict[str, dict[str, float]]:
    """Per cluster, the phases of one Flux round; `kustomizations` maps cluster -> object name.

    `times` holds the bench's ``push_start``, ``push_end``, ``trigger_answered`` and
    ``seen:<cluster>``.
    """
    start = times["push_start"]
    stored = next(
        (
            x.t
            for x in source
            if x.t >= start and (m := _STORED.match(x.msg)) and m.group(1) == subject
        ),
        None,
    )
    out: dict[str, dict[str, float]] = {}
    for cluster, name in sorted(kustomizations.items()):
        seen = times.get(f"seen:{cluster}")
        if seen is None:
            continue
        finished = next(
            (
                x
                for x in kustomize
                if x.t >= start
                and x.name == name
                and str(x.fields.get("revision", "")).endswith(sha)
                and _FINISHED.match(x.msg)
            ),
            None,
        )
        began = applied = None
        if finished is not None:
            found = _FINISHED.match(finished.msg)
            assert found is not None
            began = finished.t - go_duration(found.group(1))
            rid = finished.fields.get("reconcileID")
            applied = next(
                (
                    x.t
                    for x in kustomize
                    if x.fields.get("reconcileID") == rid and x.msg == "server-side apply completed"
                ),
                None,
            )
        marks = [
            ("push", times.get("push_end")),
            ("trigger", times.get("trigger_answered")),
            ("source", stored),
            ("queue", began),
            ("apply", applied),
            ("watch", seen),
        ]
        phases: dict[str, float] = {}
        last = start
        for phase, mark in marks:
            if mark is None or mark < last:
                phases[phase] = 0.0
                continue
            at = min(mark, seen)
            phases[phase] = at - last
            last = at
        phases["total"] = seen - start
        out[cluster] = phases
    return out
