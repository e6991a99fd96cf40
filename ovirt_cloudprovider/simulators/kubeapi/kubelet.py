"""Node objects as a kubelet registers them."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping

from .constants import KUBELET_VERSION, Obj
from .formats import format_time, utcnow


def kubelet_node(name: str, *, internal_ip: str | None = None, provider_id: str = "",
                 system_uuid: str | None = None, external_cloud_provider: bool = True, ready: bool = True,
                 labels: Mapping[str, str] | None = None, os_image: str = "Ubuntu 24.04.2 LTS",
                 kernel_version: str = "6.8.0-60-generic", container_runtime: str = "containerd://2.0.5",
                 kubelet_version: str = KUBELET_VERSION, architecture: str = "amd64", cpu: str = "4",
                 memory: str = "8148352Ki") -> Obj:
    """The Node object a kubelet registers. With ``external_cloud_provider`` (``--cloud-provider=external``)
    it carries the ``node.cloudprovider.kubernetes.io/uninitialized`` taint and no providerID, and its only
    addresses are the Hostname and the ``--node-ip`` (``internal_ip``) when given."""
    now = format_time(utcnow())
    rnd = random.Random(name)
    node_labels = {
        "beta.kubernetes.io/arch": architecture, "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": architecture, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        **(labels or {}),
    }
    annotations = {"node.alpha.kubernetes.io/ttl": "0",
                   "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    if internal_ip and external_cloud_provider:
        annotations["alpha.kubernetes.io/provided-node-ip"] = internal_ip
    taints = [{"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}] \
        if external_cloud_provider else []
    addresses = ([{"type": "InternalIP", "address": internal_ip}] if internal_ip else []) + [
        {"type": "Hostname", "address": name}]
    conds = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True" if ready else "False", "KubeletReady" if ready else "KubeletNotReady",
         "kubelet is posting ready status" if ready else "container runtime network not ready"),
    ]
    capacity = {"cpu": cpu, "ephemeral-storage": "101430960Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                "memory": memory, "pods": "110"}
    spec: Obj = {"taints": taints} if taints else {}
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": node_labels, "annotations": annotations},
        "spec": spec,
        "status": {
            "capacity": capacity, "allocatable": dict(capacity),
            "conditions": [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now,
                            "lastTransitionTime": now} for t, s, r, m in conds],
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{rnd.getrandbits(128):032x}",
                "systemUUID": system_uuid or str(uuid.UUID(int=rnd.getrandbits(128))).upper(),
                "bootID": str(uuid.UUID(int=rnd.getrandbits(128))),
                "kernelVersion": kernel_version, "osImage": os_image, "containerRuntimeVersion": container_runtime,
                "kubeletVersion": kubelet_version, "kubeProxyVersion": "", "operatingSystem": "linux",
                "architecture": architecture,
            },
        },
    }
