"""The Kubernetes side of the shell, one behaviour per module.

- :mod:`.errors`: what a failed request is to us: :data:`~.errors.REQUEST_ERRORS` (an API error or no
  answer), one-line descriptions, the Status of an API error, ``Retry-After``, :class:`~.errors.KubeConfigError`.
- :mod:`.client`: building an ``ApiClient`` (explicit kubeconfig, in-cluster service account,
  ``$KUBECONFIG``, ``~/.kube/config``), reading raw JSON answers, timestamps.
- :mod:`.raw`: :class:`~.raw.CoreRequests` and :class:`~.raw.LeaseRequests`, the core/v1 Node and Event
  requests and the Lease requests, sent raw through the ``ApiClient`` without the generated ``CoreV1Api``
  (which costs about 20 MB to load) and ``CoordinationV1Api``.
- :mod:`.informer`: :class:`~.informer.NodeCache`, the LIST+WATCH informer of Nodes, and
  :func:`~.informer.observed_node`, which reduces a Node to an ObservedNode.
- :mod:`.writer`: :class:`~.writer.NodeWriter`, which applies Actions to Nodes with the smallest writes
  and preconditions, and its :class:`~ovirt_cloudprovider.core.records.ApplyResult`.
- :mod:`.events`: :class:`~.events.EventRecorder`, core/v1 Events on Nodes, aggregated by ``count``.
- :mod:`.leader`: :class:`~.leader.LeaderElector`, leader election on a coordination.k8s.io/v1 Lease.

Rules: this package is the only one that imports ``kubernetes`` (and urllib3, the client's transport).
What crosses the boundary is our own records from :mod:`ovirt_cloudprovider.core.records` (``ObservedNode``
out, ``Action`` in, ``ApplyResult`` back); client models never leave this package. Requests and responses
are plain JSON (raw responses, as ``_preload_content=False`` gives them). Importers name the module that owns
what they need (``from ovirt_cloudprovider.kube.informer import NodeCache``): this file imports nothing, so loading one
module does not load the others.
"""
