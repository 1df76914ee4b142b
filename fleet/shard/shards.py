"""One replica's part in the shard: membership, the clusters it owns, their fences, refreshes.

Every round (a third of the lease duration, or at once when a cluster entry arrives) the
replica, in this order:

1. renews its membership lease ``fleet-member-<replica>`` (created on the first round), which
   carries its API URL once the server has bound (:meth:`Shards.advertise`), for the calls the
   other replicas send on to it (:mod:`fleet.shard.front`);
2. reads every lease of its hub id with one LIST; the live members are the member leases renewed
   within their duration (itself included), with their API URLs;
3. assigns every cluster entry it knows of by rendezvous hashing over the live members
   (:mod:`fleet.shard.assigning`), so a join or a leave moves only the clusters it must;
4. for each cluster: renews the cluster lease it holds and still owns; hands over one it no
   longer owns (fence closed first, then ``on_leave``, then the lease released so the new owner
   takes it on its next round); acquires one it owns when the lease is missing, free, or expired
   (:class:`~fleet.shard.leases.Observed`), then ``on_join``; a lease that someone else changed
   is lost at once (``on_leave``);
5. drops every cluster whose fence deadline has passed (renewals failed for two thirds of a
   lease): writes there had already stopped at the deadline (:mod:`fleet.shard.fencing`).

With ``--shard-buckets B`` (:mod:`fleet.shard.buckets`) steps 3 and 4 run over buckets instead of
clusters: the buckets that hold at least one entry are assigned, each bucket's lease
``fleet-bucket-<i>`` is renewed, handed over and acquired exactly as a cluster lease, and a
bucket acquired joins every cluster of it (``on_join`` each), a bucket handed over or lost leaves
them; a cluster's fence is its bucket's deadline. The code below speaks of lease *keys*: a
cluster's name (B = 0) or ``bucket-<i>``. Before its first membership renewal the replica checks
its B against the one stored on ``fleet-shard-config`` and refuses to start when they differ.

Every round also notes the clusters that no live replica holds (:mod:`fleet.shard.coverage`);
one unheld for longer than a lease duration plus a round is one of :meth:`Shards.problems`, which
the hub shows on its board (not green) and ``/api/shards`` lists, on every replica, so a cluster
nobody reconciles is never invisible.

Webhooks: :meth:`Shards.announce` bumps an annotation per repository on the ``fleet-refresh``
lease; every other replica watches that lease (and reads it again in each round's LIST, should
the watch be down), and calls ``on_refresh`` for a repository whose mark changed: it lists the
repository and enqueues the keys of the clusters that replica owns. The marks are sent in the
round alongside the cluster renewals, after the membership renewal and the LIST, and their
failure is logged and counted (``bump_failures``), never the round's: a refresh lease that
refuses a PATCH cannot stop the renewals. Marks older than a few lease durations are pruned
(:func:`stale_marks`, a PATCH preconditioned on the lease's resourceVersion, so a fresh mark is
never pruned by a race), keeping the lease far from the annotation size limit.

A round that fails (the management cluster unreachable) is logged and retried on the next; the
deadlines keep counting, so a replica cut off from the management cluster stops writing within
the renew deadline, as it must, since others take its clusters after a lease duration. On a
clean stop every held lease is released and the membership lease deleted, so the others take
over at once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import anyio
import anyio.abc

from fleet.apply.kube import Cluster, Timeouts
from fleet.errors import describe
from fleet.shard import assigning, buckets, management
from fleet.shard.coverage import Coverage, unheld
from fleet.shard.fencing import Fence, FencedGate
from fleet.shard.leases import (
    API_URL_ANNOTATION,
    MEMBER_PREFIX,
    REFRESH_NAME,
    Lease,
    LeaseStore,
    Lost,
    Observed,
    cluster_lease_name,
    member_lease_name,
    safe_name,
)
from fleet.shard.settings import ShardSettings

__all__ = ["Shards", "stale_marks"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_REFRESH_PREFIX = "fleet.dev/refresh-"
_AT_ONCE = 16  # lease requests in flight at once
_SETTLE = 0.2  # seconds a woken round waits for the rest of a burst of cluster entries
_MARK_KEEP = 4  # lease durations a webhook mark stays on the refresh lease before it is pruned


def stale_marks(annotations: Mapping[str, str], *, now: float, keep: float) -> list[str]:
    """The webhook marks among `annotations` set more than `keep` seconds before `now` (unix
    time; an unreadable mark is stale too). Every replica reads each mark within a round or two
    (the watch, else the rounds' LIST), so an old one is no news: pruning keeps the refresh
    lease far from the 256 KiB annotation limit, one mark per repository pushed lately."""
    old = []
    for key, value in annotations.items():
        if not key.startswith(_REFRESH_PREFIX):
            continue
        try:
            at = int(json.loads(value)["at"]) / 1e9
        except (ValueError, KeyError, TypeError):
            at = 0.0
        if at < now - keep:
            old.append(key)
    return sorted(old)


class Shards(Generic[T]):
    """The shard membership of one replica; `T` is the hub's cluster entry (a kubeconfig file)."""

    def __init__(
        self,
        settings: ShardSettings,
        *,
        hub: str,
        on_join: Callable[[T], None],
        on_leave: Callable[[str, str], None],
        on_refresh: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.me = settings.replica_id
        self.hub = hub
        self._on_join = on_join
        self._on_leave = on_leave
        self._on_refresh = on_refresh
        self.buckets = settings.buckets  # 0: one lease per cluster
        self._keys: dict[str, str] = {}  # each entry's lease key, once computed
        self._clusters: dict[str, set[str]] = {}  # the entries of each bucket key (B > 0)
        self.fence = Fence(key_of=self._key, lease_of=lambda n: self._lease_name(self._key(n)))
        self.entries: dict[str, T] = {}  # every cluster entry this replica knows of
        self.held: dict[str, Lease] = {}  # the leases it holds by key, as last written
        self.members: list[str] = []
        self.owners: dict[str, str] = {}  # the assignment of the last round, per cluster
        self.key_owners: dict[str, str] = {}  # the same per lease key (buckets with B > 0)
        self.holders: dict[str, str] = {}  # each cluster lease's holder in the last LIST
        self.urls: dict[str, str] = {}  # each live member's API URL, from its member lease
        self.api_url = settings.api_url  # this replica's, once known (:meth:`advertise`)
        self.gained = 0
        self.bump_failures = 0  # webhook marks that could not be sent (retried each round)
        self.lost = 0
        self.rounds = 0
        self.error = ""
        self.coverage = Coverage()  # the clusters no live replica holds, since when
        self.lease_errors: dict[str, str] = {}  # the last failed lease request, per key
        self._agreed = False  # this replica's B matches the stored one
        self._observed = Observed()
        self._member: Lease | None = None
        self._store: LeaseStore | None = None
        self._refresh_seen: dict[str, str] | None = None  # None until the first LIST
        self._bumps: dict[str, str] = {}
        self._wake = anyio.Event()
        self._limit = anyio.CapacityLimiter(_AT_ONCE)

    # -- lease keys: a cluster's own, or its bucket's ---------------------------------------------

    def _key(self, name: str) -> str:
        if not self.buckets:
            return name
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = buckets.bucket_key(buckets.bucket_of(name, self.buckets))
        return key

    def _lease_name(self, key: str) -> str:
        return "fleet-" + key if self.buckets else cluster_lease_name(key)

    def _clusters_of(self, key: str) -> list[str]:
        """The clusters the lease of `key` fences (B = 0: the cluster itself, entry or not)."""
        if not self.buckets:
            return [key]
        return sorted(self._clusters.get(key, ()))

    # -- what the hub calls -----------------------------------------------------------------------

    def admit(self, name: str, entry: T) -> bool:
        """Cluster entry `name` came or changed: whether this replica may join it now (it holds
        the lease). If not, the replica joins it (``on_join``) once it acquires the lease."""
        fresh = name not in self.entries
        self.entries[name] = entry
        key = self._key(name)
        if self.buckets:
            self._clusters.setdefault(key, set()).add(name)
        if fresh:
            self._wake.set()
        return key in self.held  # a late renewal is the fence's business, not the join's

    def forget(self, name: str) -> None:
        """Cluster entry `name` left: its lease is released on the next round (a bucket's, once
        its last cluster left)."""
        self.entries.pop(name, None)
        if self.buckets:
            key = self._key(name)
            self._clusters.get(key, set()).discard(name)
            if not self._clusters.get(key):
                self._clusters.pop(key, None)
            self._keys.pop(name, None)
        self._wake.set()

    def owned(self, name: str) -> bool:
        return self._key(name) in self.held and self.fence.valid(name)

    def fenced(self, name: str, cluster: Cluster) -> None:
        """Fence `cluster` (the client for entry `name`): its requests go only while held."""
        if not isinstance(cluster.gate, FencedGate):
            cluster.gate = self.fence.gate(name, cluster.gate)

    def announce(self, repos: Iterable[str]) -> None:
        """A webhook moved these repositories (keys): tell the other replicas."""
        for repo in repos:
            key = _REFRESH_PREFIX + safe_name(repo, limit=40)
            self._bumps[key] = json.dumps({"repo": repo, "by": self.me, "at": time.time_ns()})
        if self._bumps:
            self._wake.set()

    def advertise(self, url: str) -> None:
        """This replica's API is at `url` (known once the server has bound its port, unless
        ``--shard-api-url`` said it): written on its membership lease at the next round, so the
        other replicas can forward API calls to it. An explicit ``--shard-api-url`` wins."""
        if not self.settings.api_url and url != self.api_url:
            self.api_url = url
            self._wake.set()

    def peers(self) -> dict[str, str]:
        """The other live members and their API URLs ("" when one has not said it yet)."""
        return {m: self.urls.get(m, "") for m in self.members if m != self.me}

    def snapshot(self) -> dict[str, Any]:
        """What ``/api/shards`` shows."""
        now = time.monotonic()
        if self.buckets:
            held = sorted(n for n in self.entries if self.owned(n))
        else:
            held = sorted(n for n in self.held if self.fence.valid(n))
        return {
            "replica": self.me,
            "namespace": self.settings.namespace,
            "lease_seconds": self.settings.lease_seconds,
            "members": list(self.members),
            "urls": dict(sorted(self.urls.items())),
            "owners": dict(sorted(self.owners.items())),
            "holders": dict(sorted(self.holders.items())),
            "held": held,
            "requests_sent": dict(sorted(self.fence.sent.items())),
            "requests_refused": dict(sorted(self.fence.refused.items())),
            "gained": self.gained,
            "lost": self.lost,
            "rounds": self.rounds,
            "bump_failures": self.bump_failures,
            "error": self.error,
            "unheld": {
                name: {
                    "for_seconds": round(now - since, 1),
                    "why": self.coverage.why.get(name, ""),
                    "owner": self.owners.get(name, ""),
                }
                for name, since in sorted(self.coverage.since.items())
            },
            "lease_errors": dict(sorted(self.lease_errors.items())),
            "problems": self.problems(),
            "buckets": self._bucket_snapshot(),
        }

    def _bucket_snapshot(self) -> dict[str, Any]:
        """``/api/shards`` ``buckets``: B, and per bucket key its owner, holder and clusters."""
        if not self.buckets:
            return {"count": 0}
        return {
            "count": self.buckets,
            "held": sorted(k for k in self.held if self.fence.live(k)),
            "owners": dict(sorted(self.key_owners.items())),
            "clusters": {k: sorted(v) for k, v in sorted(self._clusters.items())},
        }

    def problems(self) -> list[str]:
        """What the board shows as this replica's shard problems: its failing rounds, and every
        cluster no live replica has held for longer than a lease duration plus a round."""
        settings = self.settings
        found = self.coverage.problems(
            at=time.monotonic(),
            limit=settings.lease_seconds + settings.renew_interval,
            owners=self.owners,
            errors={
                n: self.lease_errors[self._key(n)]
                for n in self.coverage.since
                if self._key(n) in self.lease_errors
            },
        )
        if self.error:
            found.insert(
                0,
                f"replica {self.me}: {self.error} (retried every {settings.renew_interval:g}s; "
                "its clusters are not written once their fences expire)",
            )
        return found

    # -- the service ------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Take part until cancelled; ready after the first round (the membership is known)."""
        interval = self.settings.renew_interval
        timeouts = Timeouts(total=max(2.0, interval), read=max(2.0, interval))
        async with management.connect(self.settings, timeouts=timeouts) as api:
            self._store = LeaseStore(api, namespace=self.settings.namespace, hub=self.hub)
            try:
                async with anyio.create_task_group() as group:
                    began = anyio.current_time()
                    await self._guarded(first=True)
                    group.start_soon(self._watch_refresh, api)
                    task_status.started()
                    while True:  # rounds start every interval, however long one took
                        wait = max(0.0, began + interval - anyio.current_time())
                        with anyio.move_on_after(wait):
                            await self._wake.wait()
                            await anyio.sleep(_SETTLE)
                        self._wake = anyio.Event()
                        began = anyio.current_time()
                        await self._guarded()
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self._release_all()

    async def _watch_refresh(self, api: Cluster) -> None:
        """Watch the refresh lease, so a push reaches this replica at once, not a round later
        (the rounds' LIST reads the same marks: whichever sees a change first acts on it)."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.settings.namespace}/leases"
        query = [
            ("watch", "1"),
            ("fieldSelector", f"metadata.name={REFRESH_NAME}"),
            ("timeoutSeconds", "300"),
        ]
        while True:
            try:
                async with api.stream(path, query=query, request_timeout=330) as response:
                    async for line in response.content:
                        event = json.loads(line)
                        if isinstance(event, dict) and event.get("type") in ("ADDED", "MODIFIED"):
                            self._refreshes(Lease.from_object(event.get("object") or {}))
            except Exception as exc:  # the rounds still carry the marks; watch again soon
                log.info(
                    "event=shard_refresh_watch_ended replica=%s error=%s", self.me, describe(exc)
                )
            await anyio.sleep(self.settings.renew_interval)

    async def _guarded(self, *, first: bool = False) -> None:
        try:
            if first:
                assert self._store is not None
                await self._store.ensure_namespace()
            await self._round()
            self.error = ""
        except buckets.BucketsMismatch:  # never joins: the hub refuses to start
            raise
        except Exception as exc:
            self.error = f"shard round failed: {describe(exc)}"
            log.warning("event=shard_round_failed replica=%s error=%s", self.me, describe(exc))
        self._expire()

    async def _round(self) -> None:
        store = self._store
        assert store is not None
        if not self._agreed:  # before it is a member: a refused replica moves nothing
            await buckets.agree(store, self.buckets, replica=self.me)
            self._agreed = True
        await self._renew_member(store)
        leases = await store.list()
        seen_at = time.monotonic()
        for lease in leases:
            self._observed.note(lease, seen_at)
        self._observed.keep_only({lease.name for lease in leases})
        by_name = {lease.name: lease for lease in leases}
        now = time.time()
        live = [  # a member lease speaks only for the replica it is named after
            x
            for x in leases
            if x.name.startswith(MEMBER_PREFIX)
            and x.name == member_lease_name(x.holder)
            and x.live(now)
        ]
        self.members = sorted({lease.holder for lease in live} | {self.me})
        self.urls = {
            lease.holder: lease.annotations[API_URL_ANNOTATION]
            for lease in live
            if lease.annotations.get(API_URL_ANNOTATION)
        }
        if self.api_url:
            self.urls[self.me] = self.api_url
        keys = {name: self._key(name) for name in self.entries}
        self.key_owners = assigning.assign(set(keys.values()), self.members)
        self.owners = {name: self.key_owners[key] for name, key in keys.items()}
        self.holders = {
            name: by_name[self._lease_name(key)].holder
            for name, key in keys.items()
            if self._lease_name(key) in by_name
        }
        refresh = by_name.get(REFRESH_NAME)
        self._refreshes(refresh)
        found = unheld(
            self.entries,
            by_name,
            self.members,
            now=now,
            lease_of=lambda n: self._lease_name(keys.get(n) or self._key(n)),
        )
        self.coverage.update(found, at=seen_at)
        self.rounds += 1
        async with anyio.create_task_group() as group:
            for key in sorted(set(keys.values()) | set(self.held)):
                group.start_soon(self._one, store, key, by_name.get(self._lease_name(key)))
            group.start_soon(self._announce, store, refresh)  # never fails the round

    async def _one(self, store: LeaseStore, name: str, lease: Lease | None) -> None:
        """Renew, hand over or acquire the lease of key `name` (a cluster, or a bucket)."""
        wanted = self.key_owners.get(name) == self.me
        async with self._limit:
            try:
                if name in self.held:
                    if wanted:
                        await self._renew(store, name, lease)
                    else:
                        await self._hand_over(store, name)
                elif wanted:
                    await self._acquire(store, name, lease)
                self.lease_errors.pop(name, None)
            except Lost as exc:
                self._lose(name, str(exc))
            except Exception as exc:  # the deadline decides; the next round tries again
                self.lease_errors[name] = describe(exc)
                log.warning(
                    "event=shard_lease_failed replica=%s cluster=%s error=%s",
                    self.me,
                    name,
                    describe(exc),
                )

    async def _announce(self, store: LeaseStore, refresh: Lease | None) -> None:
        """Prune the stale webhook marks (first: the lease is still at the version the LIST
        read), then send this replica's; a failure is logged and counted, never the round's
        (the renewals must go on whatever the refresh lease does)."""
        try:
            if refresh is not None:
                keep = _MARK_KEEP * self.settings.lease_seconds
                old = stale_marks(refresh.annotations, now=time.time(), keep=keep)
                old = [k for k in old if k not in self._bumps]
                if old and await store.prune(old, resource_version=refresh.resource_version):
                    log.info("event=shard_refresh_pruned replica=%s marks=%d", self.me, len(old))
        except Exception as exc:
            log.warning(
                "event=shard_refresh_prune_failed replica=%s error=%s", self.me, describe(exc)
            )
        try:
            await self._send_bumps(store)
        except Exception as exc:  # kept, and sent again in the next round
            self.bump_failures += 1
            log.warning(
                "event=shard_refresh_bump_failed replica=%s error=%s", self.me, describe(exc)
            )

    async def _renew_member(self, store: LeaseStore) -> None:
        now = time.time()
        name = member_lease_name(self.me)
        duration = self.settings.duration
        url = {API_URL_ANNOTATION: self.api_url} if self.api_url else {}
        if self._member is None:
            try:
                self._member = await store.create(
                    Lease(name=name, annotations=url).held_by(self.me, now=now, duration=duration)
                )
                log.info("event=shard_member_joined replica=%s lease=%s", self.me, name)
                return
            except Lost:  # a lease of ours from before (the same --replica-id): take it over
                current = next((x for x in await store.list() if x.name == name), None)
                if current is None:
                    raise
                self._member = current
        try:
            lease = self._member
            if url and lease.annotations.get(API_URL_ANNOTATION) != self.api_url:
                lease = dataclasses.replace(lease, annotations={**lease.annotations, **url})
            self._member = await store.replace(lease.held_by(self.me, now=now, duration=duration))
        except Lost:
            self._member = None  # deleted or changed: created again on the next round
            raise

    async def _acquire(self, store: LeaseStore, name: str, lease: Lease | None) -> None:
        duration = self.settings.duration
        sent = time.monotonic()
        if lease is None:
            about = {"fleet.dev/bucket": name} if self.buckets else {"fleet.dev/cluster": name}
            fresh = Lease(name=self._lease_name(name), annotations=about)
            taken = await store.create(fresh.held_by(self.me, now=time.time(), duration=duration))
        elif self._observed.expired(lease, sent):
            taken = await store.replace(lease.held_by(self.me, now=time.time(), duration=duration))
        else:
            return  # held by another replica (or by this one before a restart): wait for expiry
        self.held[name] = taken
        self.fence.hold(name, sent + self.settings.renew_deadline)
        self.gained += 1
        log.info(
            "event=shard_cluster_acquired replica=%s cluster=%s from=%s",
            self.me,
            name,
            (lease.holder if lease is not None else "") or "-",
        )
        for cluster in self._clusters_of(name):
            entry = self.entries.get(cluster)
            if entry is not None:
                self._on_join(entry)

    async def _renew(self, store: LeaseStore, name: str, lease: Lease | None) -> None:
        if lease is None or lease.holder != self.me:
            holder = lease.holder if lease is not None else "nobody (deleted)"
            raise Lost(f"lease {self._lease_name(name)} is now held by {holder or 'nobody'}")
        sent = time.monotonic()
        renewed = await store.replace(
            lease.held_by(self.me, now=time.time(), duration=self.settings.duration)
        )
        if name in self.held:  # not lost meanwhile
            self.held[name] = renewed
            self.fence.hold(name, sent + self.settings.renew_deadline)

    async def _hand_over(self, store: LeaseStore, name: str) -> None:
        """Stop writing, leave, then free the lease for its new owner."""
        lease = self.held.pop(name)
        self.fence.drop(name)
        to = self.key_owners.get(name, "")
        for cluster in self._clusters_of(name):
            cause = (
                f"cluster {cluster} is now reconciled by replica {to}"
                if to
                else f"cluster {cluster} left the fleet"
            )
            self.lost += 1
            self._on_leave(cluster, cause)
        log.info(
            "event=shard_cluster_handed_over replica=%s cluster=%s to=%s", self.me, name, to or "-"
        )
        await store.replace(lease.released(now=time.time()))

    def _lose(self, name: str, cause: str) -> None:
        if self.held.pop(name, None) is None:
            return
        self.fence.drop(name)
        log.warning("event=shard_cluster_lost replica=%s cluster=%s cause=%s", self.me, name, cause)
        for cluster in self._clusters_of(name):
            self.lost += 1
            self._on_leave(cluster, f"cluster {cluster}: this replica lost its lease ({cause})")

    def _expire(self) -> None:
        for name in [n for n in self.held if not self.fence.live(n)]:
            self._lose(name, f"not renewed within {self.settings.renew_deadline:g}s")

    # -- webhooks reaching the owners --------------------------------------------------------------

    async def _send_bumps(self, store: LeaseStore) -> None:
        if not self._bumps:
            return
        bumps, self._bumps = self._bumps, {}
        try:
            await store.bump(bumps)
        except Exception:
            self._bumps = {**bumps, **self._bumps}  # sent again on the next round
            raise

    def _refreshes(self, lease: Lease | None) -> None:
        marks = {
            k: v for k, v in (lease.annotations if lease else {}).items()
            if k.startswith(_REFRESH_PREFIX)
        }  # fmt: skip
        seen, self._refresh_seen = self._refresh_seen, marks
        if seen is None:
            return  # the first look: what was pushed before this replica started is old news
        for key, value in marks.items():
            if seen.get(key) == value:
                continue
            try:
                mark = json.loads(value)
                repo, by = str(mark["repo"]), str(mark.get("by", ""))
            except (ValueError, KeyError, TypeError):
                log.warning("event=shard_refresh_unreadable annotation=%s", key)
                continue
            if by != self.me:
                log.info("event=shard_refresh repo=%s from=%s", repo, by)
                self._on_refresh(repo)

    # -- stopping ---------------------------------------------------------------------------------

    async def _release_all(self) -> None:
        store = self._store
        if store is None:
            return
        for name in list(self.held):
            lease = self.held.pop(name)
            self.fence.drop(name)
            try:
                await store.replace(lease.released(now=time.time()))
            except Exception as exc:
                log.warning("event=shard_release_failed cluster=%s error=%s", name, describe(exc))
        if self._member is not None:
            try:
                await store.delete(
                    self._member.name, resource_version=self._member.resource_version
                )
            except Exception as exc:
                log.warning("event=shard_leave_failed replica=%s error=%s", self.me, describe(exc))
            log.info("event=shard_member_left replica=%s", self.me)
