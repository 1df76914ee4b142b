"""Where a machine's CPU went during a window: CPU seconds by program, every process counted.

A bench on a shared 2-core machine wants to know whether the hub or the clusters it drives are
the limit: :func:`snapshot` reads every process's CPU times (user + system) once, :func:`spent`
subtracts two snapshots and groups by program name (``kube-apiserver``, ``etcd``, ``krender``,
``git``...), with the hub's own process as ``hub`` (its children are counted by their own names).
A process that ended inside the window is missed (its time is gone with it), one that started
inside counts from zero: short-lived ``git`` processes are counted only in part, which the
result says by naming them.
"""

from __future__ import annotations

import psutil

__all__ = ["Snapshot", "snapshot", "spent"]

Snapshot = dict[int, tuple[str, float]]  # pid -> (program, CPU seconds so far)


def snapshot(*, hub_pid: int | None = None) -> Snapshot:
    """Every process's program name and CPU seconds now (`hub_pid` named ``hub``)."""
    found: Snapshot = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if times is None:
            continue
        name = "hub" if proc.pid == hub_pid else str(proc.info.get("name") or "?")
        found[proc.pid] = (name, times.user + times.system)
    return found


def spent(before: Snapshot, after: Snapshot, *, top: int = 8) -> dict[str, float]:
    """CPU seconds by program between two snapshots, the `top` largest and ``other``."""
    by_name: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        old = before.get(pid)
        by_name[name] = by_name.get(name, 0.0) + seconds - (old[1] if old and old[0] == name else 0)
    ranked = sorted(by_name.items(), key=lambda item: -item[1])
    shown: dict[str, float] = {name: round(seconds, 2) for name, seconds in ranked[:top]}
    rest = sum(seconds for _, seconds in ranked[top:])
    if rest:
        shown["other"] = round(rest, 2)
    return shown
