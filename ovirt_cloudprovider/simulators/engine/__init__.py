"""Loopback oVirt Engine API v4 simulator: a real HTTPS server that the real ``ovirtsdk4`` talks to.

What it serves (shapes mirror recorded engine answers in ``ovirt-samples/manageiq``):

- SSO: ``POST /ovirt-engine/sso/oauth/token`` (``grant_type=password``) answers
  ``{access_token, scope, exp, token_type}``; bad credentials get HTTP 400 with
  ``{"error_code": "access_denied", "error": "Cannot authenticate user ..."}`` as a real engine does.
  ``POST /ovirt-engine/services/sso-logout`` revokes a token (the SDK calls it on ``close()``).
- API (``Authorization: Bearer <token>``; a missing, unknown or expired token gets the engine's 401 HTML page
  with ``WWW-Authenticate: Basic realm="RESTAPI"``): the root ``/ovirt-engine/api``; ``/vms`` with ``search``,
  ``max`` and ``follow``; ``/vms/{id}`` and its ``reporteddevices``, ``nics`` and ``tags``; ``/tags``,
  ``/clusters``, ``/hosts``, ``/datacenters``, ``/instancetypes`` (each with ``/{id}``); ``/events`` with
  ``from`` and ``max`` (newest first; ``max`` keeps the newest). A missing entity is a 404 with an empty body.
- Search subset: ``field op value`` with fields ``name``, ``status``, ``tag`` (a tag matches VMs that carry it
  or any of its child tags), ``cluster``, ``datacenter``, ``host``, ``id``, ``fqdn``, ``os``, ``description``;
  ops ``=`` and ``!=``; ``*`` wildcards; ``and`` / ``or`` (``and`` binds tighter; juxtaposition is ``and``);
  ``sortby name [asc|desc]``; ``page N`` (page size = ``max``, default 100). An unknown field, a syntax error
  or an unknown sort field yields an empty ``<vms/>`` with 200, as a real engine does.
- Hosts: ``/hosts`` with ``search`` (fields ``name``, ``status``, ``cluster``, ``datacenter``, ``tag``,
  ``address``, ``id``; an optional ``Hosts:`` prefix), ``max``, paging and ``follow`` (``nics``, ``cluster``
  (``.data_center``)); ``/hosts/{id}`` and ``/hosts/{id}/nics``. Host NICs have the recorded shape (a bridged
  management NIC with IPv4 and IPv6, a bond of two slaves, a VLAN on the bond); host status changes
  (``set_host_status``) and removals (``remove_host``) log the engine's VDS events.
- ``follow``: ``reported_devices``, ``tags``, ``cluster`` (``.data_center``), ``host`` (``.cluster``...),
  ``instance_type``, ``nics``, ``template``, ``original_template``; inlined where the link element would
  be, the sub-collection ``<link rel=...>`` elements are kept (the SDK reads both).

Fault injection (each fault has an optional path prefix and an optional count): latency, HTTP errors with an
Apache HTML body, 502 from a "proxy" (HTML, also for SSO), a web server's HTML "404 Not Found" page for GETs of
VMs or hosts by id (``html_not_found``: not the engine's own 404, which has an empty body), engine ``<fault>``
errors, dropped connections, a hung SSO token endpoint, expiring all tokens, a search that loses VMs and hosts.
Every request is counted (method, path, query, status).

Use it as a context manager in tests::

    with EngineSimulator(fleet=generate_fleet(20, seed=1)) as sim:
        ...  # sim.url, sim.ca_file, sim.username, sim.password

or standalone: ``python -m ovirt_cloudprovider.simulators.engine --port 8443 --vms 50 --write-config x.conf``.

Modules: ``constants`` (paths, codes, statuses, TLS material), ``model`` (the :class:`Fleet` and its objects),
``generate`` (:func:`generate_fleet`), ``xmltree`` (XML trees, fault and Apache error bodies), ``render``
(fleet objects as engine XML, ``follow=``), ``search`` (the search language), ``handler`` (HTTP), ``faults``
(fault injection, request records), ``sso`` (tokens and authentication), ``simulator``
(:class:`EngineSimulator`: lifecycle, mutations, counters, API routing) and ``cli``.
"""

from __future__ import annotations

from .cli import main
from .constants import (
    API_PREFIX,
    BLANK_TEMPLATE_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    GUEST_VISIBLE_STATUSES,
    HOST_STATUSES,
    ON_HOST_STATUSES,
    ROOT_TAG_ID,
    SSO_LOGOUT_PATH,
    SSO_TOKEN_PATH,
    VM_STATUSES,
    tls_paths,
)
from .faults import RequestRecord
from .generate import generate_fleet
from .model import (
    EngineConflict,
    Fleet,
    GuestDevice,
    GuestOS,
    SimCluster,
    SimDataCenter,
    SimEvent,
    SimHost,
    SimHostNic,
    SimInstanceType,
    SimTag,
    SimTemplate,
    SimVM,
)
from .render import FollowError, parse_follow
from .search import SearchError, SearchQuery, UnknownField, parse_search, search_hosts, search_vms
from .simulator import EngineSimulator

__all__ = [
    "API_PREFIX", "BLANK_TEMPLATE_ID", "DEFAULT_PASSWORD", "DEFAULT_USERNAME", "GUEST_VISIBLE_STATUSES",
    "HOST_STATUSES", "ON_HOST_STATUSES", "ROOT_TAG_ID", "SSO_LOGOUT_PATH", "SSO_TOKEN_PATH", "VM_STATUSES",
    "EngineConflict", "EngineSimulator", "Fleet", "FollowError", "GuestDevice", "GuestOS", "RequestRecord",
    "SearchError", "SearchQuery", "SimCluster", "SimDataCenter", "SimEvent", "SimHost", "SimHostNic",
    "SimInstanceType", "SimTag", "SimTemplate", "SimVM", "UnknownField", "generate_fleet", "main", "parse_follow",
    "parse_search", "search_hosts", "search_vms", "tls_paths",
]
