"""What a webhook push did, as the hub answers it: per repository, moved, unchanged or failed.

A push names a repository; the hub refreshes each of its sources that read it (one listing,
coalesced with any in flight) and waits a bounded time for the answer. The outcome is what
happened, not what was hoped: a remote that refused the listing is ``failed`` with its error, a
listing still running when the wait ends is ``pending`` (it goes on, and its apps are enqueued
when it lands). Repositories are named by their normalised key, which never holds a credential.
A push that comes while the hub is still reading its config (it listens first) waits for it, a
bounded time, else is answered 202 ``starting``: nothing is lost, since every app is synced from
its repository's newest commit once the config is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PushOutcome", "RepoRefresh"]

RefreshResult = Literal["moved", "unchanged", "failed", "pending"]


@dataclass(frozen=True)
class RepoRefresh:
    """One repository's refresh: its result, the error if it failed, the keys it enqueued."""

    repo: str
    result: RefreshResult
    error: str = ""
    enqueued: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repo": self.repo, "result": self.result, "enqueued": self.enqueued}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class PushOutcome:
    """Every repository a push matched; no match is an empty outcome, not an error."""

    repos: tuple[RepoRefresh, ...] = ()
    starting: bool = False  # the hub was still reading its config: nothing was matched yet

    @property
    def http_status(self) -> int:
        """200 when every refresh landed, 202 while one is pending (or the hub is starting),
        502 when one failed."""
        if self.starting:
            return 202
        results = {r.result for r in self.repos}
        if "failed" in results:
            return 502
        if "pending" in results:
            return 202
        return 200

    def to_json(self) -> dict[str, Any]:
        if self.starting:
            return {
                "matched": 0,
                "starting": "the hub is still reading its config; once it is read, every app "
                "is synced from its repository's newest commit, this push's included",
            }
        return {
            "matched": len(self.repos),
            "moved": sum(r.result == "moved" for r in self.repos),
            "repos": [r.to_json() for r in self.repos],
        }
