"""The externalgrpc ``CloudProvider`` service: each request answered by :class:`~.groups.NodeGroups`.

- From memory (never the engine): ``NodeGroups``, ``NodeGroupForNode`` (by providerID; a node of no group gets a
  NodeGroup with id ``""``), ``NodeGroupTargetSize``, ``NodeGroupNodes`` (instance ids are providerIDs).
- ``Refresh``: one group search (and the repairs); ``NodeGroupIncreaseSize``, ``NodeGroupDeleteNodes``: see
  :mod:`.groups`; ``NodeGroupTemplateNodeInfo``: the template node as ``nodeBytes`` and ``nodeInfo``.
- ``NodeGroupDecreaseTargetSize``: FAILED_PRECONDITION (every VM of a group exists in the engine: there is no
  requested-but-not-created capacity to give back); ``NodeGroupGetOptions``, ``PricingNodePrice``,
  ``PricingPodPrice``: UNIMPLEMENTED (the autoscaler then uses its defaults; a partial options answer would crash
  it); ``GPULabel``: ``nvidia.com/gpu.present`` (no group has GPUs), ``GetAvailableGPUTypes``: none;
  ``Cleanup``: nothing to release (the service outlives the autoscaler that calls it).
- Failures: an unknown group is NOT_FOUND, a refused request (above max, below min, another group's VM)
  FAILED_PRECONDITION (a non-positive delta INVALID_ARGUMENT), an engine without answer UNAVAILABLE, an engine
  refusal FAILED_PRECONDITION; the message is one line, never a secret.

Every request is counted in ``ovirt_cloudprovider_autoscaler_requests_total{method, code}``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..engine.errors import EngineError, EngineTransientError
from ..logs import kv
from ..metrics import PREFIX
from .groups import NodeGroups, Refused
from .protocol import load, template_response

log = logging.getLogger(__name__)

T = TypeVar("T")
GPU_LABEL = "nvidia.com/gpu.present"
METHODS = ("NodeGroups", "NodeGroupForNode", "PricingNodePrice", "PricingPodPrice", "GPULabel",
           "GetAvailableGPUTypes", "Cleanup", "Refresh", "NodeGroupTargetSize", "NodeGroupIncreaseSize",
           "NodeGroupDeleteNodes", "NodeGroupDecreaseTargetSize", "NodeGroupNodes", "NodeGroupTemplateNodeInfo",
           "NodeGroupGetOptions")
_REFUSED = {"not_found": grpc.StatusCode.NOT_FOUND, "invalid": grpc.StatusCode.INVALID_ARGUMENT,
            "precondition": grpc.StatusCode.FAILED_PRECONDITION}


class AutoscalerMetrics:
    """The autoscaler's own metrics (next to the engine request metrics of :class:`~..metrics.Metrics`)."""

    def __init__(self, registry: CollectorRegistry, groups: NodeGroups) -> None:
        self.requests_total = Counter(
            f"{PREFIX}_autoscaler_requests_total", "externalgrpc requests by method and gRPC status code.",
            ["method", "code"], registry=registry)
        for method in METHODS:
            self.requests_total.labels(method, "OK")
        self.vms_created_total = Counter(
            f"{PREFIX}_nodegroup_vms_created_total", "VMs created for a node group.", ["group"], registry=registry)
        self.vms_removed_total = Counter(
            f"{PREFIX}_nodegroup_vms_removed_total", "VMs of a node group removed (with their disks).", ["group"],
            registry=registry)
        self.size = Gauge(f"{PREFIX}_nodegroup_size", "VMs of a node group in the engine (its target size).",
                          ["group"], registry=registry)
        self.unverified = Gauge(
            f"{PREFIX}_nodegroup_unverified_vms", "VMs claiming a node group at the last search whose ownership did "
            "not verify (signed mark, cluster, template, name): never touched.", ["group"], registry=registry)
        for g in groups.configs():
            self.unverified.labels(g.name).set_function(functools.partial(groups.unverified, g.name))
            self.vms_created_total.labels(g.name)
            self.vms_removed_total.labels(g.name)
            self.size.labels(g.name).set_function(functools.partial(groups.target_size, g.name))


def _rpc(method: Callable[..., T]) -> Callable[..., T]:
    """One request: its count, and our failures as gRPC status codes (one-line messages)."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: CloudProvider, request: Any, context: grpc.ServicerContext) -> T:
        code = "OK"
        try:
            return method(self, request, context)
        except Refused as err:
            code = _REFUSED[err.kind].name
            log.info(f"{name} refused: {err}")
            context.abort(_REFUSED[err.kind], str(err))
        except EngineTransientError as err:
            code = "UNAVAILABLE"
            log.warning(f"{name} failed: {err}")
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        except EngineError as err:
            code = "FAILED_PRECONDITION"
            log.warning(f"{name} failed: {err}")
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
        except _Unimplemented as err:
            code = "UNIMPLEMENTED"
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(err))
        except Exception as err:
            code = "INTERNAL"
            log.exception(f"{name} failed", extra=kv(error=type(err).__name__))
            context.abort(grpc.StatusCode.INTERNAL, f"{name}: internal error ({type(err).__name__})")
        finally:
            if self.metrics is not None:
                self.metrics.requests_total.labels(name, code).inc()
        raise AssertionError("unreachable")  # context.abort raises

    return wrapper


class _Unimplemented(Exception):
    pass


class CloudProvider:
    """The servicer (registered with ``add_CloudProviderServicer_to_server``); one method per RPC."""

    def __init__(self, groups: NodeGroups, metrics: AutoscalerMetrics | None = None) -> None:
        self.groups = groups
        self.metrics = metrics
        self.pb, _ = load()

    def _group(self, name: str) -> Any:
        g = self.groups.config(name)
        return self.pb.NodeGroup(id=g.name, minSize=g.min_size, maxSize=g.max_size,
                                 debug=f"{g.name}: template {g.template} in cluster {g.cluster}, "
                                       f"{g.min_size}..{g.max_size} VMs named {g.prefix}-*")

    @_rpc
    def NodeGroups(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb.NodeGroupsResponse(nodeGroups=[self._group(g.name) for g in self.groups.configs()])

    @_rpc
    def NodeGroupForNode(self, request: Any, context: grpc.ServicerContext) -> Any:
        name = self.groups.group_for(request.node.providerID)
        group = self._group(name) if name is not None else self.pb.NodeGroup(id="")
        return self.pb.NodeGroupForNodeResponse(nodeGroup=group)

    @_rpc
    def NodeGroupTargetSize(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb.NodeGroupTargetSizeResponse(targetSize=self.groups.target_size(request.id))

    @_rpc
    def NodeGroupNodes(self, request: Any, context: grpc.ServicerContext) -> Any:
        instances = [self.pb.Instance(id=i.provider_id, status=self.pb.InstanceStatus(instanceState=i.state))
                     for i in self.groups.nodes(request.id)]
        return self.pb.NodeGroupNodesResponse(instances=instances)

    @_rpc
    def Refresh(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.groups.refresh()
        return self.pb.RefreshResponse()

    @_rpc
    def NodeGroupIncreaseSize(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.groups.increase(request.id, request.delta)
        return self.pb.NodeGroupIncreaseSizeResponse()

    @_rpc
    def NodeGroupDeleteNodes(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.groups.delete(request.id, [n.providerID for n in request.nodes])
        return self.pb.NodeGroupDeleteNodesResponse()

    @_rpc
    def NodeGroupDecreaseTargetSize(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.groups.config(request.id)
        raise Refused(f"node group {request.id}: every VM of the group exists in the engine; there is no requested "
                      "capacity to give back (delete nodes with NodeGroupDeleteNodes)")

    @_rpc
    def NodeGroupTemplateNodeInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        return template_response(self.groups.template_node(request.id))

    @_rpc
    def NodeGroupGetOptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise _Unimplemented("per-group autoscaling options are not configurable: the autoscaler's defaults apply")

    @_rpc
    def PricingNodePrice(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise _Unimplemented("oVirt VMs have no price")

    @_rpc
    def PricingPodPrice(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise _Unimplemented("oVirt VMs have no price")

    @_rpc
    def GPULabel(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb.GPULabelResponse(label=GPU_LABEL)

    @_rpc
    def GetAvailableGPUTypes(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb.GetAvailableGPUTypesResponse()

    @_rpc
    def Cleanup(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb.CleanupResponse()


__all__ = ["GPU_LABEL", "METHODS", "AutoscalerMetrics", "CloudProvider"]
