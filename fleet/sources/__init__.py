"""Git sources shared by the whole fleet: mirrors, revisions, snapshots of commits."""

from __future__ import annotations

from fleet.sources.credentials import Credential, Credentials, load_credentials
from fleet.sources.mirror import Mirror, MirrorStats
from fleet.sources.pushed import PushedRef
from fleet.sources.registry import Sources, SourceSettings
from fleet.sources.snapshot import Snapshot, repo_path
from fleet.sources.urls import RepoId, check_repo_url, repo_id

__all__ = [
    "Credential",
    "Credentials",
    "Mirror",
    "MirrorStats",
    "PushedRef",
    "RepoId",
    "Snapshot",
    "SourceSettings",
    "Sources",
    "check_repo_url",
    "load_credentials",
    "repo_id",
    "repo_path",
]
