"""The pure core: records in, records out; no I/O, no clock, no logging, no SDK or Kubernetes client.

- :mod:`.records`: the shared records (``VirtualMachine``, ``Snapshot``, ``NodeSpec``, ``ObservedNode``,
  ``Action``, ``Plan``) and well-known keys (labels, annotations, taints).
- :mod:`.settings`: the configuration records (``Config`` and its sections, ``ConfigError``, ``Notice``).
- :mod:`.providerid`: the providerID format and VM-id normalisation.
- :mod:`.addresses`, :mod:`.desired`: a VM → the Node it should be.
- :mod:`.plan`: desired + observed → Actions, with the safety rules; :mod:`.absence`: absence, deletion and
  the circuit breaker.
- :mod:`.schedule`: when to sweep (the controller loop's timing) and the backoff of sweeps and event polls.

The ``core is pure`` import contract in ``pyproject.toml`` enforces this.
"""
