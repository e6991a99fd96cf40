"""The oVirt engine side: one SSO session, one paged search per discovery, engine events.

Rules: this package is the only place that imports ``ovirtsdk4`` and ``pycurl`` (inside it, only
:mod:`.connection` does); SDK objects never leave it. It returns
:class:`~ovirt_cloudprovider.model.Snapshot` / :class:`~ovirt_cloudprovider.model.VirtualMachine` records and
raises only :class:`~.errors.EngineError` subclasses, whose ``str()`` is one line (what failed, where, why) and
never contains the password or the session token. The password is read only through
:func:`ovirt_cloudprovider.config.resolve_password`, at every login.

This file imports none of its modules: import the one you need, e.g. ``from ovirt_cloudprovider.engine.errors
import EngineError`` does not load the SDK.

- :mod:`.errors`: ``EngineError`` and its subclasses (auth, transient, fault), ``EngineEvent``, the node-relevant
  event codes and the ``EVENTS_MISSED`` marker; the one-line, secret-free message helpers. Stdlib only.
- :mod:`.endpoint`: which engine (``host[:port]`` for messages, base URL, timeout) and which CA to trust
  (``ca_file``, else the system CA bundle; ``insecure`` only when asked). Stdlib only.
- :mod:`.sso`: the SSO login and logout with ``urllib``, bounded in time by a watchdog. Stdlib only.
- :mod:`.connection`: the ``ovirtsdk4.Connection`` subclass (tokens from our login, status of every answer)
  and the classification of SDK, curl and TLS failures into ``EngineError``.
- :mod:`.records`: SDK objects → our records (``vm_record``), duck-typed.
- :mod:`.client`: ``EngineClient``: session reuse, paged discovery, fetch by id, events, check, close.
"""
