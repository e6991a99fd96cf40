"""The externalgrpc protocol: our ``protos/externalgrpc.proto`` (and the trimmed v1.Node of ``protos/k8s_node.proto``)
loaded at runtime with ``grpc.protos_and_services`` (grpcio-tools compiles them in memory on first use; nothing
generated is kept in the repository), and the template node as a v1.Node message.

``pb`` and ``services`` are the message and service modules (``pb.NodeGroup``, ``services.CloudProviderServicer``,
``services.add_CloudProviderServicer_to_server``, ``services.CloudProviderStub``).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import grpc

from ..core.nodegroups import TemplateNode

PROTO = "ovirt_cloudprovider/autoscaler/protos/externalgrpc.proto"
SERVICE = "clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider"


def _proto_root() -> str:
    """The directory that holds the ``ovirt_cloudprovider`` package (PROTO is relative to it)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.cache
def load() -> tuple[Any, Any]:
    """(messages, services) of the externalgrpc protocol, compiled once per process.

    grpcio-tools finds .proto files only under ``sys.path`` entries; an editable install imports the package
    through a finder, without its checkout on ``sys.path``: then that directory is appended (last, so it shadows
    nothing), as grpcio-tools appends its own bundled protos."""
    if not any(os.path.isfile(os.path.join(entry or ".", PROTO)) for entry in sys.path):
        sys.path.append(_proto_root())
    return grpc.protos_and_services(PROTO)  # type: ignore[no-any-return]


def node_message(node: TemplateNode) -> Any:
    """The v1.Node message of a template node: name, labels, capacity = allocatable, Ready, the node's OS and
    architecture (the fields a new node of the group will have before any pod runs on it)."""
    pb, _ = load()
    msg = pb.NodeGroupTemplateNodeInfoResponse().nodeInfo  # a v1.Node
    msg.metadata.name = node.name
    for key, value in node.labels:
        msg.metadata.labels[key] = value
    msg.spec.unschedulable = False
    for key, value in node.capacity:
        msg.status.capacity[key].string = value
        msg.status.allocatable[key].string = value
    msg.status.phase = "Running"
    for kind, status in (("Ready", "True"), ("MemoryPressure", "False"), ("DiskPressure", "False"),
                         ("PIDPressure", "False"), ("NetworkUnavailable", "False")):
        cond = msg.status.conditions.add()
        cond.type, cond.status = kind, status
    msg.status.nodeInfo.operatingSystem = node.operating_system
    msg.status.nodeInfo.architecture = node.architecture
    return msg


def template_response(node: TemplateNode) -> Any:
    """NodeGroupTemplateNodeInfoResponse with the node both as ``nodeBytes`` and as the older ``nodeInfo``."""
    pb, _ = load()
    msg = node_message(node)
    resp = pb.NodeGroupTemplateNodeInfoResponse(nodeBytes=msg.SerializeToString(deterministic=True))
    resp.nodeInfo.CopyFrom(msg)
    return resp


__all__ = ["PROTO", "SERVICE", "load", "node_message", "template_response"]
