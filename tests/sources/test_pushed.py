"""A push webhook's sha in place of the listing, and the replays that must not rewind a branch.

The pure rule (:func:`fleet.sources.pushed.verdict`) is tested on its own; the rest runs real git
over a real ``git http-backend`` server, which counts what the remote was asked: ref listings
(protocol v2 ``ls-refs``: an ``ls-remote`` or a refspec fetch) and fetches. Every push is a GitHub
delivery signed with HMAC and parsed by :mod:`fleet.hub.webhooks`, as the hub receives it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from fleet.hub import webhooks
from fleet.sources import PushedRef, Sources, SourceSettings
from fleet.sources.pushed import verdict
from tests.sources.gitkit import GitHttpServer, Remote, git

pytestmark = pytest.mark.anyio

A, B, C = "a" * 40, "b" * 40, "c" * 40
SECRET = "s3cret"


def _push(url: str, *, before: str, after: str, ref: str = "refs/heads/main") -> webhooks.Push:
    payload = {"ref": ref, "before": before, "after": after, "repository": {"clone_url": url}}
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    push = webhooks.parse_github(headers, body, secret=SECRET)
    assert push is not None
    return push


def test_only_an_authenticated_branch_move_with_both_commits_is_a_claim() -> None:
    assert PushedRef.of(ref="refs/heads/main", before=A, after=B, authenticated=True) == PushedRef(
        "refs/heads/main", A, B
    )
    for ref, before, after, authenticated in [
        ("refs/heads/main", A, B, False),  # not proven by a signature or token
        ("refs/tags/v1", A, B, True),  # a tag's sha may be the tag object
        ("refs/heads/main", "0" * 40, B, True),  # a branch made: nothing to continue
        ("refs/heads/main", A, "0" * 40, True),  # a branch deleted
        ("refs/heads/main", "", B, True),  # a payload without `before`
        ("refs/heads/main", A, "b" * 12, True),  # not a full commit id
    ]:
        assert (
            PushedRef.of(ref=ref, before=before, after=after, authenticated=authenticated) is None
        )


def test_a_claim_is_trusted_only_when_it_continues_the_listing() -> None:
    claim = PushedRef("refs/heads/main", A, B)
    assert verdict(claim, A) == "moves"
    assert verdict(claim, B) == "same"
    assert verdict(claim, C) == "if-descends"  # a missed push, or a replay: git decides
    assert verdict(claim, None) == "list"


def test_a_push_is_authenticated_only_when_parsed_through_its_check() -> None:
    signed = _push("https://git.example/repo.git", before=A, after=B)
    assert signed.authenticated and signed.pushed == PushedRef("refs/heads/main", A, B)
    built = webhooks.Push(provider="github", urls=signed.urls, ref=signed.ref, after=B, before=A)
    assert built.pushed is None
    body = json.dumps(
        {"ref": "refs/heads/main", "before": A, "after": B, "project": {"git_http_url": "x"}}
    ).encode()
    gitlab = webhooks.parse_gitlab(
        {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "t"}, body, secret="t"
    )
    assert gitlab is not None and gitlab.pushed == PushedRef("refs/heads/main", A, B)


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {{v: '{v}'}}\n"


def _force(remote: Remote, sha: str, *, ref: str = "refs/heads/main") -> None:
    """Force-push `ref` of the remote to `sha` (a rollback), the work tree following main."""
    git("push", "--quiet", "--force", "origin", f"{sha}:{ref}", cwd=remote.work)
    if ref == "refs/heads/main":
        git("reset", "--quiet", "--hard", sha, cwd=remote.work)


def _pushed_refs(mirror_path: Path) -> str:
    return git("for-each-ref", "refs/fleet/", cwd=mirror_path)


async def test_a_genuine_push_is_fetched_while_its_one_branch_is_listed(tmp_path: Path) -> None:
    """A push whose `before` is the listed sha costs one fetch by id and one listing of the
    remote's branches (ls-refs with the ref-prefix refs/heads/, never the whole remote): the
    branch and HEAD move because the remote says main is there; the mirror's branch points at it
    and no pushed ref is left behind."""
    remote = Remote(tmp_path / "repos")
    first = remote.commit({"app/cm.yaml": CM.format(v=1)})
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.url("repo.git")
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
        mirror = sources.mirror(url)
        assert (await sources.snapshot(url, "main")).commit == first
        listings, fetches = server.counts.listings, server.counts.fetches
        assert listings >= 1 and fetches == 1  # the listing and the fetch were counted
        assert server.counts.prefixes[0] == ()  # the full listing names no prefix

        new = remote.commit({"app/cm.yaml": CM.format(v=2)})
        push = _push(url, before=first, after=new)
        assert await sources.refresh(url, pushed=push.pushed) is True
        assert server.counts.listings == listings + 1 and server.counts.fetches == fetches + 1
        (prefixes,) = server.counts.prefixes[listings:]
        assert prefixes == ("refs/heads/",)  # branches only: no tags, no pull refs
        assert (mirror.stats.ls_remotes, mirror.stats.ref_listings) == (1, 1)
        assert mirror.stats.fetches_by_id == 1
        assert (await sources.snapshot(url, "main")).commit == new
        assert (await sources.snapshot(url, "HEAD")).commit == new
        assert server.counts.fetches == fetches + 1  # the commit came with the push
        assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == new  # kept reachable
        assert _pushed_refs(mirror.path) == ""

        assert await sources.refresh(url, pushed=push.pushed) is False  # delivered again
        assert server.counts.listings == listings + 1 and mirror.stats.pushes_noted == 2


async def test_a_confirmed_push_whose_fetch_failed_is_fetched_when_resolved(
    tmp_path: Path,
) -> None:
    """The remote refuses the fetch by id but lists main at the pushed sha: the listing moves,
    and the commit is fetched by id when an app resolves main, the mirror's main promoted to it
    and no pushed ref left."""
    remote = Remote(tmp_path / "repos")
    first = remote.commit({"app/cm.yaml": CM.format(v=1)})
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.url("repo.git")
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
        mirror = sources.mirror(url)
        await sources.snapshot(url, "main")
        new = remote.commit({"app/cm.yaml": CM.format(v=2)})
        server.refuse_fetches = True
        assert await sources.refresh(url, pushed=_push(url, before=first, after=new).pushed)
        assert mirror.refs_seen["refs/heads/main"] == new and mirror.stats.fetches_by_id == 0
        assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == first
        server.refuse_fetches = False
        assert (await sources.snapshot(url, "main")).commit == new
        assert mirror.stats.fetches_by_id == 1 and mirror.stats.ls_remotes == 1
        assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == new
        assert _pushed_refs(mirror.path) == ""


async def test_a_replay_after_a_rollback_does_not_deploy_the_rolled_back_commit(
    tmp_path: Path,
) -> None:
    """main A, push A->B delivered, main force-pushed back to A (delivered), then A->B replayed:
    its `before` is the listed sha, but the remote's listing of main says A, so B is not
    deployed and the mirror's main stays at A. The same through a descent: main rolled from C
    back to A, then B->C replayed (C descends from A)."""
    remote = Remote(tmp_path / "repos")
    a = remote.commit({"app/cm.yaml": CM.format(v=1)})
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.url("repo.git")
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
        mirror = sources.mirror(url)
        await sources.snapshot(url, "main")
        b = remote.commit({"app/cm.yaml": CM.format(v=2)})
        d1 = _push(url, before=a, after=b)
        assert await sources.refresh(url, pushed=d1.pushed) is True
        assert (await sources.snapshot(url, "main")).commit == b
        _force(remote, a)
        assert await sources.refresh(url, pushed=_push(url, before=b, after=a).pushed) is True
        assert (await sources.snapshot(url, "main")).commit == a
        assert mirror.stats.ls_remotes == 1

        fetches = server.counts.fetches
        assert await sources.refresh(url, pushed=d1.pushed) is False  # the replay
        assert mirror.stats.pushes_listed == 1 and mirror.stats.ls_remotes == 2
        assert server.counts.fetches == fetches  # B was here: git's fetch by id asked nothing
        assert mirror.refs_seen["refs/heads/main"] == a
        assert (await sources.snapshot(url, "main")).commit == a
        assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == a
        assert _pushed_refs(mirror.path) == ""

        c = remote.commit({"app/cm.yaml": CM.format(v=3)})  # a -> c
        assert await sources.refresh(url, pushed=_push(url, before=a, after=c).pushed) is True
        assert (await sources.snapshot(url, "main")).commit == c
        _force(remote, a)
        assert await sources.refresh(url, pushed=_push(url, before=c, after=a).pushed) is True
        assert await sources.refresh(url, pushed=_push(url, before=b, after=c).pushed) is False
        assert mirror.stats.pushes_listed == 2  # if-descends, refused by the listing
        assert (await sources.snapshot(url, "main")).commit == a
        assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == a


async def test_a_signed_push_naming_a_commit_main_is_not_at_is_not_deployed(
    tmp_path: Path,
) -> None:
    """A signed push names main's listed sha as `before` and, as `after`, a commit descending
    from it that the remote serves by id but main does not point at: on another branch, or only
    under a pull ref (a fork network's objects). Neither is deployed, the mirror's main does
    not move (the fetch went to fleet's own ref, deleted once refused) and main's files are
    still the listed commit's."""
    remote = Remote(tmp_path / "repos")
    head = remote.commit({"app/cm.yaml": CM.format(v=1)})
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.url("repo.git")
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
        mirror = sources.mirror(url)
        await sources.snapshot(url, "main")
        local_main = git("rev-parse", "refs/heads/main", cwd=mirror.path)
        assert local_main == head

        evil = remote.commit({"app/cm.yaml": CM.format(v="evil")}, branch="evil")
        fork = remote.commit({"app/cm.yaml": CM.format(v="fork")}, branch="fork")
        _force(remote, fork, ref="refs/pull/1/head")
        git("push", "--quiet", "origin", "--delete", "fork", cwd=remote.work)
        git("reset", "--quiet", "--hard", head, cwd=remote.work)
        for n, after in enumerate((evil, fork), start=1):
            fetches = server.counts.fetches
            await sources.refresh(url, pushed=_push(url, before=head, after=after).pushed)
            assert server.counts.fetches == fetches + 1  # asked for by id, then refused
            assert mirror.stats.pushes_listed == n and mirror.stats.ref_listings == n
            assert mirror.refs_seen["refs/heads/main"] == head
            assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == head
            assert _pushed_refs(mirror.path) == ""
            snapshot = await sources.snapshot(url, "main")
            assert snapshot.commit == head
            assert git("show", f"{head}:app/cm.yaml", cwd=mirror.path) == CM.format(v=1).strip()


async def test_a_replayed_old_push_does_not_rewind_the_branch(tmp_path: Path) -> None:
    """After pushes first->second->third, replaying the signed first->second delivery (its
    `before` no longer listed, its `after` an ancestor of the branch) lists the remote instead,
    and the branch stays at third; so does a push delivered out of order."""
    remote = Remote(tmp_path / "repos")
    first = remote.commit({"app/cm.yaml": CM.format(v=1)})
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.url("repo.git")
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
        mirror = sources.mirror(url)
        await sources.snapshot(url, "main")
        second = remote.commit({"app/cm.yaml": CM.format(v=2)})
        old = _push(url, before=first, after=second)
        assert await sources.refresh(url, pushed=old.pushed) is True
        assert (await sources.snapshot(url, "main")).commit == second
        third = remote.commit({"app/cm.yaml": CM.format(v=3)})
        assert await sources.refresh(url, pushed=_push(url, before=second, after=third).pushed)
        assert (await sources.snapshot(url, "main")).commit == third
        assert mirror.stats.ls_remotes == 1
        listings = server.counts.listings

        assert await sources.refresh(url, pushed=old.pushed) is False  # the replay
        # the branches listed with the fetch, then in full once the claim was refused
        assert mirror.stats.ls_remotes == 2 and server.counts.listings == listings + 2
        assert mirror.stats.pushes_listed == 1
        assert mirror.refs_seen["refs/heads/main"] == third
        assert (await sources.snapshot(url, "main")).commit == third

        # out of order: fourth->fifth arrives before third->fourth
        fourth = remote.commit({"app/cm.yaml": CM.format(v=4)})
        fifth = remote.commit({"app/cm.yaml": CM.format(v=5)})
        late = _push(url, before=third, after=fourth)
        assert await sources.refresh(url, pushed=_push(url, before=fourth, after=fifth).pushed)
        assert mirror.stats.ls_remotes == 2  # the remote's main is at fifth: moved, no full list
        assert (await sources.snapshot(url, "main")).commit == fifth
        assert await sources.refresh(url, pushed=late.pushed) is False
        assert mirror.stats.ls_remotes == 3  # fourth is behind fifth: listed, not rewound
        assert (await sources.snapshot(url, "main")).commit == fifth


async def test_the_remote_decides_a_push_not_continuing_the_listing(tmp_path: Path) -> None:
    """A signed push whose `before` is not the listed sha (here a force-push the mirror never saw
    the start of) moves the branch only because the remote's listing of its branches says it is
    there, with no full listing; a push that is not a branch move lists in full."""
    remote = Remote(tmp_path / "repos")
    first = remote.commit({"app/cm.yaml": CM.format(v=1)})
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.url("repo.git")
        sources = Sources(SourceSettings(cache_dir=tmp_path / "cache", interval=3600.0))
        mirror = sources.mirror(url)
        base = remote.commit({"app/cm.yaml": CM.format(v=2)})
        await sources.snapshot(url, "main")  # listed at base
        git("reset", "--quiet", "--hard", first, cwd=remote.work)
        forced = remote.commit({"app/cm.yaml": CM.format(v=9)})  # force-pushed off first
        listings = server.counts.listings
        push = _push(url, before=C, after=forced)  # a `before` the mirror never listed
        assert await sources.refresh(url, pushed=push.pushed) is True
        assert mirror.stats.ls_remotes == 1 and server.counts.listings == listings + 1
        assert (mirror.stats.ref_listings, mirror.stats.pushes_listed) == (1, 0)
        assert server.counts.prefixes[-1] == ("refs/heads/",)
        assert (await sources.snapshot(url, "main")).commit == forced
        assert git("rev-parse", "refs/heads/main", cwd=mirror.path) == forced
        assert base != forced

        other = remote.commit({"x.yaml": "x: 1\n"}, branch="feature")
        made = _push(url, before="0" * 40, after=other, ref="refs/heads/feature")
        assert made.pushed is None  # a branch made names no `before`: listed
        assert await sources.refresh(url, pushed=made.pushed) is True
        assert mirror.stats.ls_remotes == 2
        assert mirror.refs_seen["refs/heads/feature"] == other

        remote.tag("v2")
        tag = _push(url, before=first, after=other, ref="refs/tags/v2")
        assert tag.pushed is None  # a tag's sha may be the tag object: listed
        assert await sources.refresh(url, pushed=tag.pushed) is True
        assert mirror.stats.ls_remotes == 3 and "refs/tags/v2" in mirror.refs_seen

        fresh = Sources(SourceSettings(cache_dir=tmp_path / "cache2", interval=3600.0))
        pushed = _push(url, before=first, after=forced).pushed
        assert await fresh.refresh(url, pushed=pushed) is True  # never listed: lists
        assert fresh.mirror(url).stats.ls_remotes == 1
