"""A webhook's word about one branch: a hint that starts the fetch early, never the truth.

A push event names the branch, the commit it pointed at before (``before``) and the one it points
at now (``after``). Even authenticated, that word cannot choose what is deployed: a delivery can
be replayed (HMAC has no nonce: GitHub's redelivery or an attacker), say after the team
force-pushed the branch back to where it was; and one webhook secret serves every repository, so
the admin of any hooked repository can sign a push that names the config repository with an
``after`` from a fork, which the provider serves by id. Git stays the only source of truth.

So the rule here only decides whether the claim is worth acting on early:

- the request was **authenticated** (GitHub's HMAC over the body, GitLab's token);
- it is about a **branch** (a tag's sha may be the tag object), not a creation or deletion, and
  both shas are full commit ids;
- ``after`` is already the listed sha (``same``: nothing moves), or the claim may continue what the
  mirror listed: ``before`` is the listed sha (``moves``) or is not (``if-descends``: a push
  between them missed, or a replay).

For ``moves`` and ``if-descends`` the mirror (:meth:`fleet.sources.mirror.Mirror.note_push`)
fetches ``after`` by id into a ref of its own while it lists the remote's branches (not its tags
or pull refs); the branch moves only when the remote's listing says it is at ``after``. Anything
else (``list``, or a listing that disagrees) lists the remote in full, as for any refresh.

:func:`verdict` is that rule as a pure function of the claim and what the mirror knows.
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
        """The claim, or None when it is never acted on early (unauthenticated, a tag,
        a branch made or deleted, a sha that is no full commit id)."""
        before, after = before.strip().lower(), after.strip().lower()
        if not authenticated or not ref.startswith("refs/heads/"):
            return None
        if not (_FULL_SHA.match(before) and _FULL_SHA.match(after)) or _ZERO in (before, after):
            return None
        return cls(ref=ref, before=before, after=after)


def verdict(claim: PushedRef, known: str | None) -> Verdict:
    """What the claim means given `known`, the branch's sha in the mirror's last listing:
    ``same`` (already there: nothing moved), ``moves`` (it continues the listing) and
    ``if-descends`` (it may: a missed push or a replay), both acted on only once the remote's
    listing of the branch says ``after``, or ``list`` (ask the remote in full)."""
    if known is None:
        return "list"  # a branch the listing did not show: made since, or never listed
    if known == claim.after:
        return "same"
    if known == claim.before:
        return "moves"
    return "if-descends"
