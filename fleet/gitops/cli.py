"""``fleet image set`` and ``fleet rollback``: argparse wiring for the CI half of fleet.

:func:`add_arguments` registers both sub-commands on the top-level sub-parsers; :func:`run`
dispatches a parsed namespace, prints what happened (one line per image, the commit and where it
went) and returns the exit code: 0, or 1 with one ``error: ...`` line on a
:class:`~fleet.errors.FleetError`. Credentials come from ``FLEET_GIT_TOKEN`` or
``FLEET_GIT_TOKEN_FILE`` (see :mod:`fleet.gitops.git`), never from an option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio

from fleet.errors import FleetError
from fleet.gitops import bump, images, revert
from fleet.gitops.git import Auth
from fleet.gitops.publish import Published, PushPolicy

__all__ = ["COMMANDS", "add_arguments", "run"]

COMMANDS = ("image", "rollback")

_IMAGE_HELP = """examples:
  fleet image set app=registry/app:$SHA --path deployment/prod --repo $CONFIG_REPO --push
  fleet image set app:1.4.2 --path deployment/staging            # edit the file in ./ only
  fleet image set app=*:1.4.2 worker@sha256:... --path deployment/prod --commit

credentials for --push come from FLEET_GIT_TOKEN (or FLEET_GIT_TOKEN_FILE) and
FLEET_GIT_USERNAME (default x-access-token)."""


def _push_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target-branch", metavar="NAME", help="branch to update (default: checked out/default)"
    )
    parser.add_argument(
        "--branch", metavar="NAME", help="push to this new branch (for a merge request) instead"
    )
    parser.add_argument(
        "--attempts", type=int, default=6, help="push attempts when others push first (default 6)"
    )


def add_arguments(subparsers: Any) -> None:
    """Register ``image`` (with ``set``) and ``rollback`` on the top-level `subparsers`."""
    image = subparsers.add_parser("image", help="change image references in the config repo")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    set_ = image_sub.add_parser(
        "set",
        help="set images in a kustomization (as kustomize edit set image)",
        epilog=_IMAGE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    set_.add_argument(
        "images", nargs="+", metavar="IMAGE=NEW_REF", help="images to set (see the forms below)"
    )
    set_.add_argument("--path", required=True, help="directory of the kustomization in the repo")
    set_.add_argument("--repo", default=".", help="config repo: a clone (default .) or a URL")
    set_.add_argument("--add", action="store_true", help="add an image the file does not list")
    set_.add_argument("--commit", action="store_true", help="commit the change")
    set_.add_argument("-m", "--message", help="commit subject (default names the image and ref)")
    set_.add_argument("--push", action="store_true", help="commit and push (implies --commit)")
    set_.add_argument(
        "--source-commit", metavar="SHA", help="the app commit built (default $CI_COMMIT_SHA)"
    )
    _push_options(set_)

    back = subparsers.add_parser(
        "rollback", help="revert an app's changes in the config repo (git revert) and push"
    )
    back.add_argument("app", help="the app's name in the apps file")
    which = back.add_mutually_exclusive_group(required=True)
    which.add_argument("--to", metavar="REVISION", help="revert every later change to the app")
    which.add_argument("--commit", metavar="SHA", help="revert this one commit")
    back.add_argument("--mainline", type=int, metavar="N", help="parent to keep for a merge")
    back.add_argument(
        "--config", type=Path, default=Path("fleet.yaml"), help="the apps file (default fleet.yaml)"
    )
    back.add_argument("--repo", help="config repo clone or URL (default: the app's repoURL)")
    back.add_argument("--path", help="the app's path (default: from the apps file)")
    back.add_argument("--no-push", action="store_true", help="commit locally only")
    _push_options(back)


def _report(published: Published | None) -> None:
    if published is None or published.commit is None:
        return
    where = f"pushed to {published.pushed_to}" if published.pushed_to else "committed"
    tries = f" after {published.attempts} attempts" if published.attempts > 1 else ""
    print(f"{published.commit[:12]} {where}{tries}: {published.message.splitlines()[0]}")


async def _image_set(args: argparse.Namespace) -> int:
    changes = [images.parse(arg) for arg in args.images]
    result = await bump.set_image(
        repo=args.repo,
        path=args.path,
        changes=changes,
        add=args.add,
        commit=args.commit,
        push=args.push,
        branch=args.branch,
        target=args.target_branch,
        source=bump.source_commit(args.source_commit),
        subject=args.message,
        auth=Auth.from_env(),
        policy=PushPolicy(attempts=max(1, args.attempts)),
    )
    for edit in result.edits:
        state = "added" if edit.added else "set" if edit.changed else "unchanged"
        print(f"{result.file}: {edit.change.name} {state} -> {edit.ref}")
    if not result.changed:
        print("nothing to commit: the kustomization already says so")
    _report(result.published)
    return 0


async def _rollback(args: argparse.Namespace) -> int:
    if args.path is not None and args.repo is not None:
        target = revert.AppTarget(
            name=args.app, repo=args.repo, path=args.path, branch=args.target_branch
        )
    else:
        target = revert.app_target(args.config, args.app)
        if args.path is not None or args.target_branch is not None:
            target = revert.AppTarget(
                name=target.name,
                repo=target.repo,
                path=args.path or target.path,
                branch=args.target_branch or target.branch,
            )
    published = await revert.rollback(
        target,
        revert.RollbackRequest(commit=args.commit, to=args.to, mainline=args.mainline),
        repo=args.repo,
        push=not args.no_push,
        branch=args.branch,
        auth=Auth.from_env(),
        policy=PushPolicy(attempts=max(1, args.attempts)),
    )
    if published.commit is None:
        print(f"nothing to roll back: no change to {target.path} to revert")
    _report(published)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``image`` or ``rollback`` command; 1 with one error line on failure."""
    command = _image_set if args.command == "image" else _rollback
    try:
        return anyio.run(command, args)
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
