"""The CI half of GitOps: edits to the config repo, made the git way.

``image set`` changes a kustomization's images and pushes the commit (rebasing and re-applying when
another job pushed first); ``rollback`` reverts an app's commits; :mod:`fleet.gitops.audit` joins
the hub's sync history with git log. A low layer: it knows git and YAML, not clusters.
"""

from __future__ import annotations

from fleet.gitops.audit import CommitInfo, HistoryEntry, SyncLike, history, join, read_commits
from fleet.gitops.bump import ImageSetResult, set_image, source_commit
from fleet.gitops.git import Auth
from fleet.gitops.images import ImageChange, parse
from fleet.gitops.kustomization import ImageEdit, set_images
from fleet.gitops.publish import Published, PushPolicy, publish
from fleet.gitops.revert import AppTarget, RollbackRequest, app_target, rollback
from fleet.gitops.workspace import Workspace, open_workspace

__all__ = [
    "AppTarget",
    "Auth",
    "CommitInfo",
    "HistoryEntry",
    "ImageChange",
    "ImageEdit",
    "ImageSetResult",
    "Published",
    "PushPolicy",
    "RollbackRequest",
    "SyncLike",
    "Workspace",
    "app_target",
    "history",
    "join",
    "open_workspace",
    "parse",
    "publish",
    "read_commits",
    "rollback",
    "set_image",
    "set_images",
    "source_commit",
]
