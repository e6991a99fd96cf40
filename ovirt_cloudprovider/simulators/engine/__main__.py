"""``python -m ovirt_cloudprovider.simulators.engine``."""

import sys

from .cli import main

sys.exit(main())
