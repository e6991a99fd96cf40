"""The cluster-autoscaler's externalgrpc cloud provider for oVirt (``ovirt-cloudprovider autoscaler``).

- :mod:`.protocol`: our ``.proto`` files (``protos/``), loaded at runtime with ``grpc.protos_and_services``
  (grpcio-tools; no generated code), and the template node as a v1.Node message.
- :mod:`.groups`: :class:`~.groups.NodeGroups`, the node groups' state (from the engine, answered from memory)
  and their operations: refresh, increase, delete, with the repairs (start, tag) in the background.
- :mod:`.service`: the gRPC servicer: requests → NodeGroups, failures → gRPC status codes.
- :mod:`.server`: the process: the gRPC server (mTLS), the health and metrics port, start and shutdown.
"""

# The gRPC address the service listens on unless --grpc-bind-address says otherwise (here, so that the command
# line can show it without loading grpc).
DEFAULT_GRPC_ADDRESS = "0.0.0.0:8086"
