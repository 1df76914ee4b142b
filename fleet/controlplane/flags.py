"""Command lines of the control-plane processes (pure: paths and ports in, argv out).

The choices that matter:
- etcd runs with ``--unsafe-no-fsync``: these clusters are disposable and fsync dominates write
  latency on a shared disk.
- kube-apiserver: RBAC on, its own CA, ``--endpoint-reconciler-type=none`` (the ``kubernetes``
  Service would otherwise point at 127.0.0.1, which endpoint validation rejects), and no
  TaintNodesByCondition admission: with no node-lifecycle controller to lift it, the ``not-ready``
  taint it puts on a new Node would keep every Pod Pending.
- kube-controller-manager runs only the controllers a GitOps test needs: namespaces really delete,
  Deployments get ReplicaSets and Pods, the garbage collector follows owner references, the
  ``default`` ServiceAccount exists, and Jobs, StatefulSets and DaemonSets progress. No leader
  election, no serving port.
- kwok manages only Nodes annotated ``kwok.x-k8s.io/node=fake``, as the kubelet of their Pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONTROLLERS",
    "FAKE_NODE_ANNOTATION",
    "ClusterFiles",
    "apiserver",
    "controller_manager",
    "etcd",
    "fake_node",
    "kwok",
    "scheduler",
]

CONTROLLERS = (
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
)
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
STAGES = Path(__file__).parent / "kwok-stages.yaml"


@dataclass(frozen=True)
class ClusterFiles:
    """Where one cluster's certificates and component kubeconfig are on disk."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.root / "pki" / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.root / "pki" / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.root / "pki" / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.root / "pki" / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "pki" / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "pki" / "sa.pub"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"


def etcd(*, binary: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(binary),
        "--name=fleet-kit",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=fleet-kit={peer}",
        "--unsafe-no-fsync",
        "--log-level=warn",
        "--quota-backend-bytes=4294967296",
    ]


def apiserver(
    *, binary: Path, files: ClusterFiles, port: int, etcd_url: str, etcd_prefix: str
) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers={etcd_url}",
        f"--etcd-prefix={etcd_prefix}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={files.root / 'pki'}",
        f"--tls-cert-file={files.serving_cert}",
        f"--tls-private-key-file={files.serving_key}",
        f"--client-ca-file={files.ca}",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={files.sa_pub}",
        f"--service-account-signing-key-file={files.sa_key}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--endpoint-reconciler-type=none",
        "--disable-admission-plugins=TaintNodesByCondition",
        "--profiling=false",
        "--v=0",
    ]


def controller_manager(*, binary: Path, files: ClusterFiles) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={files.kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
        f"--controllers={','.join(CONTROLLERS)}",
        f"--root-ca-file={files.ca}",
        f"--service-account-private-key-file={files.sa_key}",
        "--use-service-account-credentials=false",
        "--kube-api-qps=100",
        "--kube-api-burst=200",
        "--v=0",
    ]


def scheduler(*, binary: Path, files: ClusterFiles) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={files.kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
        "--v=0",
    ]


def kwok(*, binary: Path, files: ClusterFiles) -> list[str]:
    key, value = FAKE_NODE_ANNOTATION
    return [
        str(binary),
        f"--kubeconfig={files.kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        "--cidr=10.244.0.1/16",
        "--node-ip=10.244.0.1",
        "--server-address=",
        f"--config={STAGES}",
    ]


def fake_node(name: str) -> dict[str, object]:
    """The Node object kwok plays the kubelet for: no taints, room for many Pods."""
    key, value = FAKE_NODE_ANNOTATION
    resources = {"cpu": "32", "memory": "256Gi", "pods": "250"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
        },
    }
