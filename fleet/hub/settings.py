"""The hub's settings: where things are, how often it looks, how hard it may push clusters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fleet.hub.server import ServerSettings
from fleet.runtime import BreakerSettings, ClusterLimitSettings, SchedulerSettings
from fleet.settings import default_cache_dir
from fleet.shard import ShardSettings

__all__ = ["HubSettings"]


@dataclass(frozen=True)
class HubSettings:
    """Everything ``fleet run`` is told; defaults suit a small fleet on one machine."""

    hub_id: str = "fleet"  # part of every object's tracking id: two hubs never own one object
    config_path: Path = Path("fleet.yaml")
    config_source: str = ""  # a git location REPO#REF:PATH (see fleet.hub.gitconfig), or ""
    clusters_dir: Path = Path("clusters")
    state_dir: Path = Path(".fleet")  # history.sqlite lives here
    cache_dir: Path = field(default_factory=default_cache_dir)
    history: str = ""  # a postgresql:// URL shared by replicas; empty: state_dir/history.sqlite
    credentials_file: Path | None = None
    helm: Path | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    poll_interval: float = 60.0  # one ls-remote per repository per interval, fleet-wide
    poll_jitter: float = 0.1  # a share of the interval
    resync_interval: float = 300.0  # a full (read-only when in sync) reconcile of every pair
    progress_recheck: float = 2.0  # how soon a Progressing app is looked at again
    config_check_interval: float = 2.0
    registry_rescan: float = 10.0
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    limits: ClusterLimitSettings = field(default_factory=ClusterLimitSettings)
    # a parked cluster is probed with backoff, at least once a minute: a cluster that comes back
    # is noticed within a minute however long it was down
    breaker: BreakerSettings = field(default_factory=lambda: BreakerSettings(probe_cap=60.0))
    cache_gc_interval: float = 3600.0  # render cache collected by age and size
    drain_timeout: float = 30.0  # SIGTERM: how long in-flight applies may take to finish
    shard: ShardSettings | None = None  # one replica of several, sharded through Leases
    in_cluster: bool = False  # the cluster the hub runs in is the destination `in-cluster`

    def __post_init__(self) -> None:
        if not self.hub_id or "/" in self.hub_id:
            raise ValueError(f"hub id {self.hub_id!r}: must be non-empty, without '/'")

    @property
    def history_path(self) -> Path:
        return self.state_dir / "history.sqlite"
