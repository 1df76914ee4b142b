"""A sync gives way to a newer commit: it stops at once and the newer one starts.

Under throttling a sync can take many seconds (each 429'd write waits its Retry-After), and a
commit pushed meanwhile used to wait for the whole of it: its inventory write, its health
reads, and its retries. Argo CD lets an operator terminate a running operation; fleet does it
by itself when the sync's own desired commit is no longer the newest: the work queue already
runs the target again once the running sync ends (the key is dirtied by the push), so ending
the running sync early is all it takes.

- :func:`newer_commit` makes the check: a function of nothing (no I/O, a lookup in the mirror's
  last listing) that says why the running sync is superseded, or ``None``. A ref names the
  newest commit; a commit sha never moves, so a sync of a pinned commit is never superseded.
- :func:`unless_superseded` runs a sync's writing steps while a watcher looks at the check every
  ``poll`` seconds; when it answers, the steps are cancelled where they wait (a Retry-After, a
  token, a request in flight, a health gate) and the reason is returned instead of a result.

What was written stays written (server-side apply is idempotent; the next sync plans against
the live objects and writes only what still differs), and the sync that stopped is reported as
what it is: stopped, not Synced, its unfinished objects skipped with the reason (see
:func:`fleet.reconcile.syncing.sync`). A sync that runs hooks is never superseded: a hook half
run is not a state to leave behind. If commits come faster than a sync can finish, each sync
gives way to the next; the objects still follow the newest commit and the target is Synced as
soon as the commits pause. A superseded sync is no failure: the record says ``Superseded`` (normal
severity, no error, OutOfSync, not Ready; :mod:`fleet.reconcile.summary`), and an operator's
explicit sync carries over to the newer commit (:mod:`fleet.hub.reconciling`).

Known limit: the check looks at the ref, not at the app's path. Any newer commit of the ref
supersedes every app reading it, even one whose path did not change; in a monorepo under steady
commits a throttled cluster's syncs keep giving way until the commits pause.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

__all__ = ["Outcome", "Superseded", "newer_commit", "unless_superseded"]

T = TypeVar("T")

Superseded = Callable[[], str | None]
"""Why the running sync is no longer wanted (``"superseded by commit ..."``), or ``None``."""


def _named(refs: Mapping[str, str], revision: str) -> str | None:
    """The sha `revision` names in a listing: itself (HEAD, a full ref), a branch, then a tag."""
    for name in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
        if name in refs:
            return refs[name]
    return None


def newer_commit(
    refs: Callable[[], Mapping[str, str]], *, revision: str, running: str
) -> Superseded:
    """The check for a sync of commit `running`, which the app's `revision` named: superseded
    once the listing `refs()` (a mirror's last one, read without I/O) names another commit."""

    def check() -> str | None:
        current = _named(refs(), revision.strip() or "HEAD")
        if current is None or not running or current == running:
            return None
        return f"superseded by commit {current[:12]} of {revision}"

    return check


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What :func:`unless_superseded` gives back: the work's result, or why it was stopped."""

    result: T | None = None
    superseded: str | None = None


async def unless_superseded(
    work: Callable[[], Awaitable[T]], *, superseded: Superseded | None, poll: float = 0.2
) -> Outcome[T]:
    """Await ``work()``; stop it when `superseded` answers (looked at every `poll` s).

    The work's own exception is raised as it is (never a group); a cancellation from outside
    goes through. When the work ends as the check answers, the work's result wins.
    """
    if superseded is None:
        return Outcome(result=await work())
    done: list[T] = []
    failed: list[Exception] = []
    reason: list[str] = []
    with anyio.CancelScope() as scope:  # the work runs in this task: one task spawned, not two

        async def watch() -> None:
            while True:
                why = superseded()
                if why:
                    reason.append(why)
                    scope.cancel()
                    return
                await anyio.sleep(poll)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            try:
                done.append(await work())
            except Exception as exc:  # raised below, outside the group
                failed.append(exc)
            finally:
                tg.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if done:
        return Outcome(result=done[0])
    return Outcome(superseded=reason[0] if reason else "superseded")
