"""A webhook's word about one branch: when it may stand in for listing the remote.

A push event names the branch, the commit it pointed at before (``before``) and the one it points
at now (``after``). The hub would like to believe ``after`` and skip the ``ls-remote``, but a
push can be replayed (an attacker resending a captured delivery, or a provider retrying an old
one after a newer push landed), and a replay must never move a branch backwards. So the claim is
trusted only when all of these hold, and otherwise the remote is listed, as for any refresh:

- the request was **authenticated** (GitHub's HMAC over the body, GitLab's token): a forged
  ``after`` never reaches here;
- it is about a **branch** (a tag's sha may be the tag object), not a deletion, and both shas are
  full commit ids;
- it **continues what the mirror knows**: ``before`` equals the branch's sha in the mirror's last
  listing, or ``after`` descends from that sha (a push between them was missed). A replay of an
  older push names a ``before`` the branch has left and an ``after`` it has already passed, so it
  falls back to the listing, which is the remote's own truth.

:func:`verdict` is that rule as a pure function of the claim and what the mirror knows; the
descent, which needs git, is asked by the caller only when the rule says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["PushedRef", "Verdict", "verdict"]

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_ZERO = "0" * 40

Verdict = Literal["same", "moves", "if-descends", "list"]


@dataclass(frozen=True)
class PushedRef:
    """An authenticated push's claim: `ref` moved from commit `before` to commit `after`."""

    ref: str
    before: str
    after: str

    @classmethod
    def of(cls, *, ref: str, before: str, after: str, authenticated: bool) -> PushedRef | None:
        """The claim, or None when it can never stand in for a listing (unauthenticated, a tag,
        a branch made or deleted, a sha that is no full commit id)."""
        before, after = before.strip().lower(), after.strip().lower()
        if not authenticated or not ref.startswith("refs/heads/"):
            return None
        if not (_FULL_SHA.match(before) and _FULL_SHA.match(after)) or _ZERO in (before, after):
            return None
        return cls(ref=ref, before=before, after=after)


def verdict(claim: PushedRef, known: str | None) -> Verdict:
    """What the claim means given `known`, the branch's sha in the mirror's last listing:
    ``same`` (already there: nothing moved), ``moves`` (it continues the listing: trust it),
    ``if-descends`` (trust it only if `after` descends from `known`), ``list`` (ask the remote)."""
    if known is None:
        return "list"  # a branch the listing did not show: made since, or never listed
    if known == claim.after:
        return "same"
    if known == claim.before:
        return "moves"
    return "if-descends"
