"""A replica's management connection follows its token as it rotates (a real kit apiserver).

The replica holds leases for as long as it runs, far longer than a bound token lives. Its token
is a real TokenRequest token of a ServiceAccount, bound to a Secret: the test writes a second
token into the file, deletes the first token's Secret (the apiserver then refuses that token at
once, which the test checks), and the replica keeps renewing its membership lease, round after
round, with no failed round. Both ways of reaching the management cluster are shown: a
kubeconfig whose user names a ``tokenFile`` (what the Helm chart mounts), and
``--shard-in-cluster`` (the Pod's ServiceAccount directory, here ``FLEET_SERVICEACCOUNT_DIR``).
A replica whose client read the token once fails its rounds after the revocation: this test
fails on the previous code.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import anyio
import pytest
import yaml

from fleet.apply import kube
from fleet.controlplane import RunningCluster
from fleet.shard import Shards, ShardSettings, management
from fleet.shard.leases import LeaseStore, member_lease_name
from tests.hub.hubkit import until
from tests.hub.test_in_cluster import _bound_token, _ca, _service_account, _token_status

pytestmark = pytest.mark.anyio


def _kubeconfig(path: Path, *, port: int, ca: Path, token: Path) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "m",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "certificate-authority": str(ca),
                        },
                    }
                ],
                "users": [{"name": "fleet", "user": {"tokenFile": token.name}}],  # relative
                "contexts": [{"name": "m", "context": {"cluster": "m", "user": "fleet"}}],
                "current-context": "m",
            }
        )
    )


def test_the_token_file_of_the_current_user_is_found(tmp_path: Path) -> None:
    document = {
        "current-context": "b",
        "contexts": [
            {"name": "a", "context": {"user": "ua"}},
            {"name": "b", "context": {"user": "ub"}},
        ],
        "users": [
            {"name": "ua", "user": {"tokenFile": "/a"}},
            {"name": "ub", "user": {"tokenFile": "sa/token"}},
        ],
    }
    assert management.token_file(document, base=tmp_path) == tmp_path / "sa" / "token"
    document["current-context"] = "a"
    assert management.token_file(document, base=tmp_path) == Path("/a")
    assert (
        management.token_file({"users": [{"name": "x", "user": {"token": "t"}}]}, base=tmp_path)
        is None
    )


@pytest.mark.parametrize("how", ["kubeconfig", "in-cluster"])
async def test_leases_are_renewed_across_a_token_rotation(
    how: str,
    kit_clusters: list[RunningCluster],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = kit_clusters[0]
    tag = uuid.uuid4().hex[:6]
    namespace, account = f"rotate-{tag}", "fleet"
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    ca, token = sa_dir / "ca.crt", sa_dir / "token"
    ca.write_bytes(_ca(cluster))
    (sa_dir / "namespace").write_text(namespace)
    if how == "kubeconfig":
        kubeconfig: Path | None = sa_dir / "management.yaml"
        assert kubeconfig is not None
        _kubeconfig(kubeconfig, port=cluster.port, ca=ca, token=token)
    else:
        kubeconfig = None
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(cluster.port))
        monkeypatch.setenv("FLEET_SERVICEACCOUNT_DIR", str(sa_dir))
    settings = ShardSettings(
        kubeconfig=kubeconfig, namespace=namespace, lease_seconds=3, replica_id=f"rot-{tag}"
    )
    async with kube.connect(cluster.kubeconfig) as admin:
        await _service_account(admin, namespace, account)
        first_token = await _bound_token(admin, namespace, account, "token-one")
        token.write_text(first_token)
        shards: Shards[object] = Shards(
            settings,
            hub=f"rot-{tag}",
            on_join=lambda _: None,
            on_leave=lambda _n, _c: None,
            on_refresh=lambda _: None,
        )
        store = LeaseStore(admin, namespace=namespace, hub=f"rot-{tag}")

        async def renewed_after(moment: float) -> bool:
            leases = {x.name: x for x in await store.list()}
            lease = leases.get(member_lease_name(settings.replica_id))
            return lease is not None and lease.renewed > moment

        async with anyio.create_task_group() as group:
            await group.start(shards.run)
            assert shards.error == "", shards.error

            # the kubelet's swap: a new token in the file, then the old one revoked
            second_token = await _bound_token(admin, namespace, account, "token-two")
            replacement = sa_dir / "token.new"
            replacement.write_text(second_token)
            replacement.replace(token)
            await anyio.sleep(2.5)  # the token file is looked at once a second
            await admin.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/token-one")

            async def revoked() -> bool:
                return await _token_status(cluster, ca, first_token) == 401

            await until(revoked, limit=60)  # else the test would pass on the old token
            assert await _token_status(cluster, ca, second_token) == 200
            rounds, since, errors = shards.rounds, time.time(), set()
            with anyio.fail_after(60):
                while shards.rounds < rounds + 4:  # every round after the revocation succeeds
                    if shards.error:
                        errors.add(shards.error)
                    await anyio.sleep(0.1)
            assert not errors, errors
            assert shards.error == "", shards.error
            assert await renewed_after(since)
            group.cancel_scope.cancel()
