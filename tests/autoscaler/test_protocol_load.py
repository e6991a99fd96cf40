"""The protocol compiles wherever the package is imported from: grpcio-tools looks for .proto files only under
sys.path entries, and an editable install (``pip install -e '.[autoscaler]'``, as CI does) imports the package
through a finder, with the checkout not on sys.path. Then ``ovirt-cloudprovider autoscaler`` (and
``python benchmarks/autoscaler.py``) must still find our .proto files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

# The package imported from the checkout by an importlib finder, as an editable install's finder does, with
# neither the checkout nor the current directory on sys.path.
_AS_AN_EDITABLE_INSTALL = f"""
import importlib.util, os, sys
root = {str(REPO)!r}
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != root]
spec = importlib.util.spec_from_file_location(
    "ovirt_cloudprovider", os.path.join(root, "ovirt_cloudprovider", "__init__.py"),
    submodule_search_locations=[os.path.join(root, "ovirt_cloudprovider")])
module = importlib.util.module_from_spec(spec)
sys.modules["ovirt_cloudprovider"] = module
spec.loader.exec_module(module)
from ovirt_cloudprovider.autoscaler.protocol import load
pb, services = load()
print(pb.NodeGroup.DESCRIPTOR.full_name, services.CloudProviderStub.__name__)
"""


def test_the_protocol_compiles_with_the_checkout_off_sys_path(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    proc = subprocess.run([sys.executable, "-c", _AS_AN_EDITABLE_INSTALL], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["clusterautoscaler.cloudprovider.v1.externalgrpc.NodeGroup", "CloudProviderStub"]
