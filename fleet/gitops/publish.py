"""Commit a change and push it, so that concurrent writers all land: rebase and re-apply.

A change is a function that edits the work tree, stages the result and returns the commit message
(or None when there is nothing to do). :func:`publish` runs it on top of the target branch, commits
and pushes. When the push is rejected because someone else pushed first (non-fast-forward, or a
ref lock lost on the remote), it fetches, drops its own commit, rebases any local commits under it
onto the new upstream, runs the change again on the new state, and pushes again: a bounded number
of attempts with jittered exponential backoff, so two CI jobs bumping different images both land,
and a bump racing a bump of the same image ends at whichever was applied last, never at a merge
conflict. A change is thus re-applied, never merged textually.

``branch`` pushes to a separate branch (for a merge request) instead of the target; such a branch
is ours alone, so a rejection there is an error, not a race.

A push the remote refuses for any other reason (a pre-receive hook, a protected branch, a policy)
is an error that quotes what the remote said (its ``remote:`` lines and the rejection reason), on
one line: the author of the policy wrote that text for the person reading the error.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from fleet.errors import StalledError, TransientError
from fleet.gitops.git import GitResult
from fleet.gitops.workspace import Workspace

__all__ = ["Change", "Published", "PushPolicy", "publish"]

log = logging.getLogger(__name__)

Change = Callable[[], Awaitable[str | None]]
_RACE_WORDS = (
    "non-fast-forward",
    "fetch first",
    "failed to update ref",
    "cannot lock ref",
    "stale info",
    "incorrect old value",
)
_random = secrets.SystemRandom()


@dataclass(frozen=True)
class PushPolicy:
    """How hard to try: attempts in all, and the backoff between them (seconds)."""

    attempts: int = 6
    base_delay: float = 0.3
    max_delay: float = 10.0

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1-based): exponential, jittered."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(ceiling * _random.uniform(0.5, 1.5))


@dataclass(frozen=True)
class Published:
    """The outcome: the commit made (None if nothing changed), where it went, after how many."""

    commit: str | None
    message: str = ""
    pushed_to: str | None = None  # the branch pushed, None when not pushed
    attempts: int = 1


async def _push(ws: Workspace, ref: str) -> str | None:
    """Push HEAD to `ref`; None on success, the cause when the remote moved, else raise."""
    result = await ws.git.run(
        "push", "--porcelain", "origin", f"HEAD:{ref}", check=False, network=True
    )
    if result.code == 0:
        return None
    text = f"{result.out}\n{result.err}".lower()
    if any(word in text for word in _RACE_WORDS):
        return result.cause
    said = remote_refusal(result)
    if said is None:  # no answer from the remote: a network or credential failure
        raise ws.git.failure("push", result, network=True)
    raise StalledError(
        f"{ws.display}: the remote refused the push to {ref}: {said} "
        "(fix what it asks, or push to a branch with --branch and open a merge request)"
    )


def remote_refusal(result: GitResult) -> str | None:
    """What the remote said refusing a ``push --porcelain``, on one line; None if it said nothing.

    Its own words are the ``remote:`` lines of stderr (a hook's output); the reason is the
    porcelain status line of the refused ref (``!<TAB>src:dst<TAB>[remote rejected] (why)``).
    """
    lines = result.err.splitlines()
    spoken = [line.removeprefix("remote:").strip() for line in lines if line.startswith("remote:")]
    reasons = [
        line.split("\t")[-1].strip() for line in result.out.splitlines() if line.startswith("!")
    ]
    parts = [w for w in spoken if w][-8:] + reasons
    return "; ".join(parts)[:1000] if parts else None


async def _rebase_under(ws: Workspace, base: str) -> str:
    """Drop our commit (HEAD above `base`) and move the rest onto the fetched upstream."""
    await ws.git.run("reset", "--quiet", "--hard", base)
    rebased = await ws.git.run("rebase", "--quiet", ws.upstream, check=False)
    if rebased.code != 0:
        await ws.git.run("rebase", "--abort", check=False)
        raise StalledError(
            f"{ws.display}: local commits on {ws.target} conflict with origin/{ws.target} "
            f"({rebased.cause}); pull and resolve them first"
        )
    return await ws.head()


async def publish(
    ws: Workspace,
    change: Change,
    *,
    push: bool,
    branch: str | None = None,
    policy: PushPolicy | None = None,
) -> Published:
    """Apply `change`, commit, and (with `push`) push with rebase-and-retry; see the module doc."""
    policy = policy or PushPolicy()
    ref = f"refs/heads/{branch or ws.target}"
    base = await ws.head()
    for attempt in range(1, policy.attempts + 1):
        message = await change()
        if message is None:
            log.info("event=publish_noop repo=%s branch=%s", ws.display, ws.target)
            return Published(commit=None, attempts=attempt)
        sha = await ws.commit(message)
        if not push:
            return Published(commit=sha, message=message, attempts=attempt)
        cause = await _push(ws, ref)
        if cause is None:
            log.info(
                "event=pushed repo=%s ref=%s commit=%s attempt=%d",
                ws.display,
                ref,
                sha[:12],
                attempt,
            )
            return Published(
                commit=sha, message=message, pushed_to=branch or ws.target, attempts=attempt
            )
        if branch is not None:
            raise StalledError(
                f"{ws.display}: branch {branch!r} exists on origin with other commits ({cause}); "
                "pick another --branch or delete it"
            )
        log.info(
            "event=push_rejected repo=%s ref=%s attempt=%d cause=%s",
            ws.display,
            ref,
            attempt,
            cause,
        )
        if attempt == policy.attempts:
            break
        await anyio.sleep(policy.delay(attempt))
        await ws.fetch()
        base = await _rebase_under(ws, base)
    raise TransientError(
        f"{ws.display}: push to {ws.target} rejected {policy.attempts} times "
        "(the branch kept moving); try again"
    )
