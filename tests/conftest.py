"""The root of the test tree: every fixture plugin is registered here, once.

- ``tests.engine_fixtures``: the loopback oVirt engine simulator (``engine_sim``, ``engine_sims``, ``engine_conn``,
  ``engine_client``, ``engine_conn_for``, ``engine_samples``).
- ``tests.kube_fixtures``: the loopback Kubernetes API simulator and clients for it.
- ``tests.controller.world``: the sync world (``World``: both simulators, the real clients, one sweep at a time)
  and its ``engine`` and ``kube`` fixtures, which a test module may replace with its own.

The tests are grouped by layer: ``core/`` (pure), ``engine/``, ``kube/``, ``controller/`` (the loop, the CLI and
real processes), ``deploy/`` (manifests, RBAC, the image) and ``simulators/``. ``samples/`` holds the recorded
engine answers the tests compare against (see ``samples/PROVENANCE.md``).
"""

pytest_plugins = ["tests.engine_fixtures", "tests.kube_fixtures", "tests.controller.world"]
