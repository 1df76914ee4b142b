"""Does one commit descend from another? The rewind check, answered by a repository's mirror.

A tracked branch normally moves forward: the new commit descends from the one last applied. A
force-push (or a tag moved back) can point it at a commit that does not: a *rewind*, whose prunes
sync holds until consent. :func:`is_ancestor` runs ``git merge-base --is-ancestor`` in the mirror
(local only: no network, no lock; the mirror keeps the objects of a commit a force-push left
behind). A commit the mirror does not hold cannot be shown to be an ancestor, so the answer is
then False: never prune on doubt.

The commit graph never changes, so a definite answer is remembered per mirror and (old, new)
pair: asking again, as every reconcile of a cluster at the same commits does, runs no git. The
first asks of a pair are one question too: the targets of a new commit all ask at once, and the
ones after the first wait for its git process instead of each running one (single flight), so a
commit costs one ``merge-base`` per (repository, old, new) however many clusters roll it out. A
"cannot tell" is not remembered (the commit may be fetched later), but is shared by the askers
waiting on it.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections import OrderedDict
from typing import Protocol

import anyio

from fleet.sources import gitcmd

__all__ = ["LocalGit", "is_ancestor"]

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_MEMO_SIZE = 4096  # pairs remembered per mirror


class LocalGit(Protocol):
    """What the check needs of a mirror (:class:`fleet.sources.mirror.Mirror` has it)."""

    async def local_git(self, *args: str, stdin: bytes | None = None) -> bytes: ...


_answers: weakref.WeakKeyDictionary[LocalGit, OrderedDict[tuple[str, str], bool]] = (
    weakref.WeakKeyDictionary()
)
# the pairs being asked, per mirror: the asker's done event and, once set, its answer
_asking: weakref.WeakKeyDictionary[
    LocalGit, dict[tuple[str, str], tuple[anyio.Event, list[bool]]]
] = weakref.WeakKeyDictionary()


async def is_ancestor(mirror: LocalGit, old: str, new: str) -> bool:
    """Whether commit `new` is `old` or descends from it; False when either is not known."""
    if old == new:
        return True
    for sha in (old, new):
        if not _SHA.match(sha):
            raise ValueError(f"is_ancestor: {sha!r} is not a commit id")
    memo = _answers.setdefault(mirror, OrderedDict())
    known = memo.get((old, new))
    if known is not None:
        memo.move_to_end((old, new))
        return known
    asking = _asking.setdefault(mirror, {})
    while (pending := asking.get((old, new))) is not None:
        done, answer = pending  # another caller runs git for this pair: its answer is ours
        await done.wait()
        if answer:
            return answer[0]
        # it was cancelled before it knew: ask again (lead, or wait for the next leader)
    done, answer = asking[(old, new)] = (anyio.Event(), [])
    try:
        answer.append(await _ask(mirror, old, new, memo))
    finally:
        done.set()
        del asking[(old, new)]
    return answer[0]


async def _ask(
    mirror: LocalGit, old: str, new: str, memo: OrderedDict[tuple[str, str], bool]
) -> bool:
    """One ``merge-base --is-ancestor``; a definite answer is remembered in `memo`."""
    try:
        await mirror.local_git("merge-base", "--is-ancestor", old, new)
    except gitcmd.GitFailed as exc:
        if exc.stderr:  # not "no" (exit 1, silent) but "cannot tell": a commit is missing
            log.warning("event=ancestry_unknown old=%s new=%s", old[:12], new[:12])
            return False
        answer = False
    else:
        answer = True
    memo[(old, new)] = answer
    if len(memo) > _MEMO_SIZE:
        memo.popitem(last=False)
    return answer
