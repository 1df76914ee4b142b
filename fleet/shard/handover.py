"""Taking a cluster over: the new owner joins only once it has listed every repository it reads.

The replica that held a cluster before may have applied a commit this one has not seen yet; a
new owner that joined on an older listing would apply that older commit over it. So before it
joins, the new owner lists each repository its apps read (one ``ls-remote`` each, at once) and
joins only when every one of them succeeded. A listing that fails or does not answer within
`listing_timeout` is tried again with capped exponential backoff, only the ones not yet listed;
until then the cluster shows "waiting for the listing of REPO" (through `waiting`) and nothing is
applied there. If the replica gives the cluster up meanwhile (`wanted` turns false: the lease was
lost or handed over, the entry removed) the take-over ends without joining.

The waits come from an injectable clock (:mod:`fleet.runtime.clock`), so the retry schedule is
tested on virtual time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import anyio

from fleet.runtime import Clock

__all__ = ["Listing", "listed_first"]

_TIMEOUT = 8.0  # seconds one listing may take before it counts as failed
_BACKOFF_FIRST = 1.0
_BACKOFF_CAP = 30.0


class Listing(Protocol):
    """The outcome of one repository's listing: an empty error when it succeeded."""

    @property
    def error(self) -> str: ...


async def listed_first(
    repos: Callable[[], Mapping[str, str]],
    list_repo: Callable[[str], Awaitable[Listing]],
    *,
    clock: Clock,
    wanted: Callable[[], bool],
    waiting: Callable[[str], None],
    listing_timeout: float = _TIMEOUT,
    backoff_first: float = _BACKOFF_FIRST,
    backoff_cap: float = _BACKOFF_CAP,
) -> bool:
    """List every repository of ``repos()`` (key -> URL, read afresh on each try, so a config
    change is followed) until each has succeeded once; True then (join), False as soon as
    ``wanted()`` is false. `waiting` gets a sentence naming the repositories still missing and
    why, before each retry."""
    listed: set[str] = set()
    backoff = backoff_first
    while wanted():
        missing = {k: u for k, u in repos().items() if k not in listed}
        errors = await _list_all(missing, list_repo, clock=clock, listing_timeout=listing_timeout)
        listed |= set(missing) - set(errors)
        if not errors:
            return wanted()
        if not wanted():
            return False
        named = "; ".join(f"{k}: {e}" for k, e in sorted(errors.items()))
        waiting(
            f"waiting for the listing of {', '.join(sorted(errors))} before joining (a new owner "
            f"never applies an older commit); retrying in {backoff:g}s ({named})"
        )
        await clock.sleep(backoff)
        backoff = min(backoff * 2, backoff_cap)
    return False


async def _list_all(
    repos: Mapping[str, str],
    list_repo: Callable[[str], Awaitable[Listing]],
    *,
    clock: Clock,
    listing_timeout: float,
) -> dict[str, str]:
    """List `repos` at once; the error of each that failed or timed out, by key."""
    errors = {key: f"no answer within {listing_timeout:g}s" for key in repos}

    async def one(key: str, url: str) -> None:
        with clock.move_on_after(listing_timeout):
            outcome = await list_repo(url)
            if outcome.error:
                errors[key] = outcome.error
            else:
                del errors[key]

    async with anyio.create_task_group() as group:
        for key, url in repos.items():
            group.start_soon(one, key, url)
    return errors
