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

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

pytest_plugins = ["tests.engine_fixtures", "tests.kube_fixtures", "tests.controller.world"]

# Property tests: random exploration on developers' machines (failures saved in .hypothesis/ and replayed), the
# same examples on every CI run (``CI`` set, as .ci/run sets it), so that CI's verdict is reproducible and a new
# counterexample is found and fixed on a developer's machine, not by a coin toss at merge time.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what an in-process ``main()`` did to logging (``setup_logging`` replaces the root handlers).

    Without this, the root logger keeps a handler on the stderr that pytest captured for that one test and closed
    after it, and every later log line from a lingering thread prints a "Logging error" into the run's output.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("urllib3", "kubernetes", "ovirtsdk4")}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
