"""One bare mirror per repository, shared by every app and cluster that reads it.

The model: the remote's refs are listed (``ls-remote``) at most once per interval, whoever asks;
a revision resolves against that list to a commit; the commit is fetched only if the mirror lacks
it, so one new commit costs one fetch for the whole fleet. A commit named by its sha needs no
network at all once present. Network work on a mirror holds that mirror's lock (never a global
one), so a hanging remote holds up only its own readers, until git's timeout.

Coalescing: a caller notes how many listings had started when it asked; after taking the lock it
reuses a listing that *started* after its request, or one younger than the interval for a
non-forced read. A burst of
webhook refreshes thus costs at most the one in flight plus one more.

A push webhook names the branch, its old and its new commit. That claim is a hint that starts the
fetch early, never the truth: a signature proves who sent a body, not that the remote's branch is
there now (a delivery can be replayed after a rollback; one secret signs pushes naming any
repository, with any commit a fork network serves by id). :meth:`Mirror.note_push` takes a claim
the rule of :mod:`fleet.sources.pushed` lets through (its old commit is the listed one, or it may
descend from it) and, under the mirror's lock, runs at once the fetch of its new commit by id into
a ref of the mirror's own (``refs/fleet/pushed/<sha>``, never the branch) and a listing of the
remote's branches only (``ls-remote --heads origin refs/heads/<branch>``: protocol v2 ``ls-refs``
with the ref-prefix ``refs/heads/``, no tags nor pull refs; git matches the branch's name on our
side, as its ``ls-remote`` sends no prefix for a pattern).
Only if that listing says the remote's branch is the pushed commit do the listing (and ``HEAD``,
when the last ``--symref`` listing showed it pointing at that branch) and the mirror's branch move
to it; otherwise the pushed ref is deleted and the caller lists the remote in full, as for any
refresh. What the push saves is the overlap: the commit is on its way while the branch is checked.
A tag, a deletion, a branch the listing lacks and a mirror never listed list in full too. Polls
always list, so a lost webhook is corrected by the next poll.

No git process for what is already known: commits the mirror holds are remembered (objects never
leave a mirror), so resolving a branch to a commit already fetched, the whole cost of a no-op
reconcile, reads memory only. And a commit's whole tree is listed once (:meth:`Mirror.tree`, one
``ls-tree -r``) for the last few commits, so planning a thousand apps at a new commit asks git
for their files' kinds, ids and directory listings from memory, not a process each. Small
blobs read by id are kept too (bounded in bytes): a kustomization that a commit left alone is
read from memory at the next commit. Blobs not kept are read by one ``git cat-file`` for every
caller that asks while another such read runs (:mod:`fleet.sources.coalescing`): the thousand
tenants of a hub that starts read their kustomizations with a handful of processes, not one each.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from fleet.errors import FleetError, StalledError, TransientError
from fleet.sources import gitcmd, pushed
from fleet.sources.coalescing import Coalescer
from fleet.sources.gitparse import Tree, parse_batch, parse_ls_remote, parse_tree, pick
from fleet.sources.pushed import PushedRef
from fleet.sources.urls import RepoId

__all__ = ["Mirror", "MirrorStats", "Tree"]

log = logging.getLogger(__name__)

_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_KNOWN_COMMITS = 4096  # commits remembered as present, per mirror
_TREES = 3  # whole-tree listings kept, per mirror (the commits being rolled out)
_BLOB_BYTES = 32 * 2**20  # small blobs kept by id, per mirror, at most this many bytes in all
_MAX_KEPT_BLOB = 256 * 2**10
_PUSHED = 64  # pushed commits remembered with their branch, to fetch them by id


_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


def _pushed_ref(sha: str) -> str:
    """The mirror's own ref for a pushed commit fetched by its id, before any listing vouched."""
    return f"refs/fleet/pushed/{sha}"


@dataclass
class MirrorStats:
    """What this mirror cost the remote; read by tests and metrics."""

    ls_remotes: int = 0
    fetches: int = 0
    pushes_noted: int = 0  # webhook pushes applied to the listing without an ls-remote
    pushes_listed: int = 0  # webhook pushes not trusted: the caller lists instead
    fetches_by_id: int = 0  # fetches of one pushed commit by its id (no refs listed)
    ref_listings: int = 0  # listings of one pushed branch, to check a push's claim
    trees_listed: int = 0  # whole-tree listings (one per commit planned)


class Mirror:
    """A bare mirror of `repo` at `path`; git runs with `env` and `timeout`."""

    def __init__(
        self,
        *,
        repo: RepoId,
        path: Path,
        env: Mapping[str, str],
        timeout: float,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.path = path
        self.stats = MirrorStats()
        self._env = env
        self._timeout = timeout
        self._interval = interval
        self._clock = clock
        self._lock = anyio.Lock()
        self._refs: dict[str, str] = {}
        self._listed_at: float | None = None  # when the last good listing started
        self._started = 0  # listings started
        self._done = 0  # the number of the last listing that succeeded
        self._head: str | None = None  # the branch HEAD points at, from the last listing
        self._known: OrderedDict[str, None] = OrderedDict()  # full shas the mirror holds
        self._trees: OrderedDict[str, Tree | None] = OrderedDict()
        self._tree_lock = anyio.Lock()
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._blob_reads: Coalescer[str, bytes] = Coalescer(self._read_blobs)
        # commits being checked or fetched: the leader's done event and its failure, if any
        self._ensuring: dict[str, tuple[anyio.Event, list[Exception]]] = {}
        self._blob_bytes = 0
        self._pushed: OrderedDict[str, str] = OrderedDict()  # pushed commit -> its branch
        self._fetches_ended = 0  # a caller that waited for the lock through one checks again

    @property
    def refs_seen(self) -> Mapping[str, str]:
        """The last listing, without asking the remote."""
        return self._refs

    async def resolve(self, revision: str, *, force: bool = False) -> str:
        """The full commit sha `revision` names, fetching it if new; `force` skips the interval."""
        revision = revision.strip() or "HEAD"
        if _HEX.match(revision) and await self._has_commit(revision):
            return await self._full_sha(revision)
        refs = await self.refs(force=force)
        sha = pick(refs, revision)
        if sha is None and not _HEX.match(revision):
            raise StalledError(
                f"repo {self.repo}: revision '{revision}' is no branch or tag (see targetRevision)"
            )
        await self._ensure_commit(sha or revision, wanted=revision)
        return await self._full_sha(sha or revision)

    async def refs(self, *, force: bool = False) -> dict[str, str]:
        """The remote's refs (name -> sha, tags peeled), listed once per interval for all."""
        ticket = self._started  # listings started before we asked cannot answer us
        async with self._lock:
            if self._listed_at is not None and (
                self._done > ticket
                or (not force and self._clock() - self._listed_at < self._interval)
            ):
                return self._refs
            await self._init()
            self._started += 1
            number, started = self._started, self._clock()
            out = await gitcmd.run_git(
                ["ls-remote", "--symref", "origin"],
                cwd=self.path,
                env=self._env,
                time_limit=self._timeout,
                network=True,
            )
            self.stats.ls_remotes += 1
            self._refs, self._head = parse_ls_remote(out.decode())
            self._listed_at, self._done = started, number
            log.info("event=ls_remote repo=%s refs=%d", self.repo, len(self._refs))
            return self._refs

    async def note_push(self, claim: PushedRef) -> bool | None:
        """An authenticated webhook's hint that a branch moved: whether it moved, or None when the
        caller must list the remote (:mod:`fleet.sources.pushed`: no listing yet, a branch the
        listing lacks, or the remote's branch is not at ``after``).

        A claim the rule lets through is never believed: under the mirror's lock, ``after`` is
        fetched by its id into ``refs/fleet/pushed/<sha>`` while the remote's branches are
        listed (``ls-remote --heads origin <branch>``), both at once. The branch moves, in the
        listing and in the mirror, only when that listing says the remote's branch is ``after``;
        otherwise the pushed ref is deleted and the claim refused, so a replayed delivery, or a
        signed push naming a commit the branch does not point at, deploys nothing and moves no
        local ref."""
        async with self._lock:  # after any listing in flight: it cannot overwrite this
            known = self._refs.get(claim.ref) if self._listed_at is not None else None
            decision = pushed.verdict(claim, known)
            if decision == "list":
                reason = "branch_not_listed" if self._listed_at is not None else "never_listed"
                return self._settle(claim, moved=None, reason=reason)
            if decision == "same":
                return self._settle(claim, moved=False)
            await self._init()
            listed, fetched = await self._fetch_and_list(claim)
            if listed != claim.after:
                if fetched:
                    await self.local_git("update-ref", "-d", _pushed_ref(claim.after))
                reason = "listing_failed" if listed is None else "remote_elsewhere"
                return self._settle(claim, moved=None, reason=reason)
            if fetched:
                await self._promote(claim.after, ref=claim.ref)
            return self._settle(claim, moved=True)

    async def _fetch_and_list(self, claim: PushedRef) -> tuple[str | None, bool]:
        """Fetch ``after`` by id and list the remote's branches at once (under the lock): the
        sha the remote's branch is at (None when the listing failed, "" when the remote lacks
        the branch) and whether the fetch brought the commit."""
        listed: list[str | None] = [None]
        fetched = [False]

        async def fetch() -> None:
            fetched[0] = await self._fetch_by_id(claim.after)

        async def list_one() -> None:
            try:
                out = await gitcmd.run_git(
                    ["ls-remote", "--heads", "origin", claim.ref],
                    cwd=self.path,
                    env=self._env,
                    time_limit=self._timeout,
                    network=True,
                )
            except FleetError as exc:
                log.info(
                    "event=ref_listing_failed repo=%s ref=%s error=%s", self.repo, claim.ref, exc
                )
                return
            self.stats.ref_listings += 1
            refs, _ = parse_ls_remote(out.decode())
            listed[0] = refs.get(claim.ref, "")

        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            tg.start_soon(list_one)
        return listed[0], fetched[0]

    async def _promote(self, sha: str, *, ref: str) -> None:
        """Point the mirror's `ref` at the fetched `sha` (the remote's listing said so) and drop
        its ``refs/fleet/pushed/`` ref, in one ``update-ref`` transaction."""
        script = f"update {ref} {sha}\ndelete {_pushed_ref(sha)}\n"
        await self.local_git("update-ref", "--stdin", stdin=script.encode())
        self._remember(sha)

    def _settle(self, claim: PushedRef, *, moved: bool | None, reason: str = "") -> bool | None:
        """Apply a judged claim to the listing (under the lock) and log it."""
        if moved is None:
            self.stats.pushes_listed += 1
            log.info(
                "event=push_not_trusted repo=%s ref=%s sha=%s reason=%s",
                self.repo,
                claim.ref,
                claim.after[:12],
                reason,
            )
            return None
        if moved:
            self._refs = dict(self._refs)  # readers may hold the old mapping
            self._refs[claim.ref] = claim.after
            if self._head == claim.ref:
                self._refs["HEAD"] = claim.after
            self._pushed[claim.after] = claim.ref
            if len(self._pushed) > _PUSHED:
                self._pushed.popitem(last=False)
        self.stats.pushes_noted += 1
        log.info(
            "event=push_noted repo=%s ref=%s sha=%s moved=%s",
            self.repo,
            claim.ref,
            claim.after[:12],
            moved,
        )
        return moved

    async def _ensure_commit(self, sha: str, *, wanted: str, ref: str = "") -> None:
        """Fetch `sha` unless held; the callers of a new commit wait for the first one's check
        and fetch instead of each running git (a thousand apps resolve it at once)."""
        if sha in self._known:
            self._known.move_to_end(sha)
            return
        pending = self._ensuring.get(sha)
        if pending is not None:
            done, failed = pending
            await done.wait()
            if sha in self._known:
                return
            if failed:  # the leader's fetch failed: so does ours, without another git each
                raise failed[0]
        done, failed = self._ensuring[sha] = (anyio.Event(), [])
        try:
            await self._fetch_commit(sha, wanted=wanted, ref=ref or self._pushed.get(sha, ""))
        except Exception as exc:
            failed.append(exc)
            raise
        finally:
            done.set()
            if self._ensuring.get(sha, (None, None))[0] is done:
                del self._ensuring[sha]

    async def _fetch_commit(self, sha: str, *, wanted: str, ref: str = "") -> None:
        """Fetch the commit `sha`; one a push named (`ref` its branch) is asked for by its id,
        which spares the fetch its listing of the remote's refs (protocol v2), the branches
        after it only if the remote refuses that."""
        fetched = self._fetches_ended
        if await self._has_commit(sha):
            return
        async with self._lock:
            if sha in self._known or (
                fetched != self._fetches_ended and await self._has_commit(sha)
            ):
                return  # another caller fetched it while we waited
            try:
                await self._fetch_locked(sha, wanted=wanted, ref=ref)
            finally:
                self._fetches_ended += 1
        if not await self._has_commit(sha):
            if pick(self._refs, wanted) == sha:
                raise TransientError(f"repo {self.repo}: commit {sha[:12]} vanished while fetching")
            raise StalledError(f"repo {self.repo}: commit '{wanted}' not found on the remote")

    async def _fetch_locked(self, sha: str, *, wanted: str, ref: str) -> None:
        """The fetch itself, under the mirror's lock: by id for a pushed commit, else the
        branches and tags, else (a commit no ref reaches) by id."""
        await self._init()
        if ref and await self._fetch_by_id(sha):
            if self._refs.get(ref) == sha:  # still what the remote's listing said
                await self._promote(sha, ref=ref)
            else:
                self._remember(sha)  # kept reachable by its refs/fleet/pushed/ ref
            return
        args = ["fetch", "--quiet", "--no-tags", "--prune", "origin", *_REFSPECS]
        await gitcmd.run_git(
            args, cwd=self.path, env=self._env, time_limit=self._timeout, network=True
        )
        self.stats.fetches += 1
        log.info("event=fetch repo=%s wanted=%s", self.repo, wanted)
        if not await self._has_commit(sha) and len(sha) == 40:
            # a commit no branch or tag reaches: ask for it by id (protocol v2 allows it)
            await gitcmd.run_git(
                ["fetch", "--quiet", "--no-tags", "origin", sha],
                cwd=self.path,
                env=self._env,
                time_limit=self._timeout,
                network=True,
            )
            self.stats.fetches += 1

    async def _fetch_by_id(self, sha: str) -> bool:
        """``git fetch origin +SHA:refs/fleet/pushed/SHA``: the one commit and its history, kept
        reachable by a ref of fleet's own (never a branch: a listing alone moves those); False
        when the remote refused it."""
        try:
            await gitcmd.run_git(
                [
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "origin",
                    f"+{sha}:{_pushed_ref(sha)}",
                ],
                cwd=self.path,
                env=self._env,
                time_limit=self._timeout,
                network=True,
            )
        except FleetError as exc:
            log.info("event=fetch_by_id_refused repo=%s sha=%s error=%s", self.repo, sha[:12], exc)
            return False
        self.stats.fetches += 1
        self.stats.fetches_by_id += 1
        log.info("event=fetch repo=%s wanted=%s by_id=true", self.repo, sha[:12])
        return True

    async def _init(self) -> None:
        if (self.path / "HEAD").exists():
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        await gitcmd.run_git(
            ["init", "--quiet", "--bare", str(tmp)],
            cwd=None,
            env=self._env,
            time_limit=self._timeout,
        )
        await gitcmd.run_git(
            ["remote", "add", "origin", self.repo.fetch_url],
            cwd=tmp,
            env=self._env,
            time_limit=self._timeout,
        )
        tmp.rename(self.path)

    async def _has_commit(self, sha: str) -> bool:
        if sha in self._known:
            self._known.move_to_end(sha)
            return True
        if not (self.path / "HEAD").exists():
            return False
        try:
            await self.local_git("cat-file", "-e", f"{sha}^{{commit}}")
        except gitcmd.GitFailed:
            return False
        if _FULL_SHA.match(sha):
            self._remember(sha)
        return True

    async def _full_sha(self, sha: str) -> str:
        if sha in self._known:
            return sha
        try:
            out = await self.local_git("rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}")
        except gitcmd.GitFailed:
            raise StalledError(f"repo {self.repo}: commit '{sha}' not found") from None
        full = out.decode().strip()
        self._remember(full)
        return full

    def _remember(self, sha: str) -> None:
        self._known[sha] = None
        if len(self._known) > _KNOWN_COMMITS:
            self._known.popitem(last=False)

    async def tree(self, commit: str) -> Tree | None:
        """The whole tree of `commit` (a full sha the mirror holds), listed once and kept for
        the last few commits; None when it is too large to keep."""
        if commit in self._trees:
            self._trees.move_to_end(commit)
            return self._trees[commit]
        async with self._tree_lock:  # the apps of a new commit all ask at once: one listing
            if commit not in self._trees:
                out = await self.local_git("ls-tree", "-r", "-t", "-z", "--full-tree", commit)
                self.stats.trees_listed += 1
                self._trees[commit] = parse_tree(out)
                if len(self._trees) > _TREES:
                    self._trees.popitem(last=False)
            return self._trees[commit]

    async def blob(self, oid: str) -> bytes:
        """The bytes of blob `oid`; small ones are kept (a blob's id is its content's hash)."""
        return (await self.blobs([oid]))[oid]

    async def blobs(self, oids: list[str]) -> dict[str, bytes]:
        """The bytes of each blob: kept ones from memory, the others with one git process."""
        found: dict[str, bytes] = {}
        for oid in oids:
            data = self._blobs.get(oid)
            if data is not None:
                self._blobs.move_to_end(oid)
                found[oid] = data
        missing = [oid for oid in dict.fromkeys(oids) if oid not in found]
        if missing:
            try:
                read = await self._blob_reads.get(missing)
            except KeyError as exc:
                raise gitcmd.GitFailed(
                    f"git cat-file: object {exc.args[0]} is missing", stderr="missing"
                ) from None
            for oid, data in read.items():
                self._keep(oid, data)
            found.update(read)
        return found

    async def _read_blobs(self, oids: list[str]) -> dict[str, bytes]:
        """The blobs of `oids` the mirror holds, with one git process (whoever asked meanwhile
        is in `oids` too: :attr:`_blob_reads`)."""
        out = await self.local_git("cat-file", "--batch", stdin="\n".join(oids).encode())
        return parse_batch(out, oids, missing_ok=True)

    def _keep(self, oid: str, data: bytes) -> None:
        if len(data) > _MAX_KEPT_BLOB:
            return
        self._blobs[oid] = data
        self._blob_bytes += len(data)
        while self._blob_bytes > _BLOB_BYTES:
            _, dropped = self._blobs.popitem(last=False)
            self._blob_bytes -= len(dropped)

    async def local_git(self, *args: str, stdin: bytes | None = None) -> bytes:
        """A local git command in the mirror; no lock: objects never change."""
        return await gitcmd.run_git(
            args, cwd=self.path, env=self._env, time_limit=self._timeout, stdin=stdin
        )
