"""Hub replicas sharded through Leases in a management cluster (see :mod:`fleet.shard.shards`)."""

from fleet.shard.fencing import Fence, FencedGate, NotOwner
from fleet.shard.settings import ShardSettings, default_replica_id
from fleet.shard.shards import Shards

__all__ = ["Fence", "FencedGate", "NotOwner", "ShardSettings", "Shards", "default_replica_id"]
