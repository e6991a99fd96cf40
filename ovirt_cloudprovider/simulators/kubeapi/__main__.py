"""``python -m ovirt_cloudprovider.simulators.kubeapi``: serve a simulated Kubernetes API until SIGINT/SIGTERM."""

import sys

from .cli import main

sys.exit(main())
