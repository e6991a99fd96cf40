"""The engine simulator's constants: API paths, credentials, product version, AuditLogType codes, VM and host
statuses, content types and fixed bodies; the shared test TLS material; the clock helpers."""

from __future__ import annotations

import datetime as dt
import importlib.resources

API_PREFIX = "/ovirt-engine/api"
SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
ROOT_TAG_ID = "00000000-0000-0000-0000-000000000000"
BLANK_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_USERNAME = "admin@internal"
DEFAULT_PASSWORD = "sim-Engine-p4ss"  # deliberately distinctive: tests grep outputs for it
DEFAULT_PAGE_SIZE = 100  # the engine's SearchResultsLimit default when a search has "page" but no max
PRODUCT_VERSION = (4, 5, 5, 1)  # major, minor, revision, build
PRODUCT_FULL_VERSION = "4.5.5-1.el8"

# oVirt AuditLogType codes (ovirt-engine backend/.../common/AuditLogType.java) used for /events.
VDC_START = 1
USER_VDC_LOGIN = 30
USER_VDC_LOGOUT = 31
USER_RUN_VM = 32  # "VM ${VmName} started on Host ${VdsName}"
USER_STOP_VM = 33
USER_ADD_VM = 34
USER_ADD_VM_FINISHED_SUCCESS = 53  # "VM ${VmName} creation has been completed."
USER_UPDATE_VM = 35
VM_DOWN = 61
VM_MIGRATION_START = 62
VM_MIGRATION_DONE = 63
USER_INITIATED_SHUTDOWN_VM = 73
USER_REMOVE_VM_FINISHED = 113  # 36 (USER_REMOVE_VM) was dropped; 36 is now USER_ADD_VM_TEMPLATE_FAILURE
USER_VDC_LOGIN_FAILED = 114
VM_NOT_RESPONDING = 126
VM_SET_TO_UNKNOWN_STATUS = 142
USER_INITIATED_RUN_VM = 150
USER_STARTED_VM = 153
USER_REBOOT_VM = 157
USER_ATTACH_TAG_TO_VM = 440
USER_DETACH_VM_FROM_TAG = 446
USER_SUSPEND_VM_OK = 503
VM_PAUSED = 1025
# Host codes as ovirt-engine's AuditLogType.java numbers them (texts from AuditLogMessages.properties).
VDS_FAILURE = 12  # "Host h is non responsive." (VdsManager)
VDS_DETECTED = 13  # "Status of host h was set to Up." (InitVdsOnUpCommand)
VDS_ACTIVATE = 16  # "Activation of host h initiated by u." (ActivateVdsCommand)
USER_VDS_START = 20  # "Host h was started by u." (power management: StartVdsCommand)
USER_VDS_STOP = 21  # "Host h was stopped by u." (power management: StopVdsCommand, VdsPowerDownCommand)
USER_REMOVE_VDS = 44  # "Host h was removed by u."
USER_VDS_MAINTENANCE_WITHOUT_REASON = 620  # "Host h was switched to Maintenance mode by u." (MaintenanceVdsCommand)
HOST_STATUSES = frozenset({
    "connecting", "down", "error", "initializing", "install_failed", "installing", "installing_os", "kdumping",
    "maintenance", "non_operational", "non_responsive", "pending_approval", "preparing_for_maintenance", "reboot",
    "unassigned", "up",
})
OVIRTMGMT_NETWORK_ID = "b6a660fd-f1ff-4d26-b535-91fae6d42a3f"

VM_STATUSES = frozenset({
    "down", "image_locked", "migrating", "not_responding", "paused", "powering_down", "powering_up",
    "reboot_in_progress", "restoring_state", "saving_state", "suspended", "unknown", "up", "wait_for_launch",
})
# Statuses in which the engine still shows what the guest agent reported (fqdn, OS, reported devices).
GUEST_VISIBLE_STATUSES = frozenset({
    "up", "migrating", "powering_down", "reboot_in_progress", "paused", "not_responding", "unknown",
    "saving_state",
})
# Statuses in which the VM runs on a host.
ON_HOST_STATUSES = GUEST_VISIBLE_STATUSES | {"powering_up", "wait_for_launch", "restoring_state"}
# Statuses from which reaching "up" logs USER_RUN_VM ("VM started on Host").
_STARTING = frozenset({"down", "suspended", "powering_up", "wait_for_launch", "restoring_state"})
GiB = 1024**3

_HTML_401 = b"<html><head><title>Error</title></head><body>Unauthorized</body></html>"
_HTML_404 = b"<html><head><title>Error</title></head><body>Not Found</body></html>"
_XML_CT = "application/xml;charset=UTF-8"
_JSON_CT = "application/json"
_HTML_CT = "text/html;charset=UTF-8"
_SERVER_HEADER = "Apache/2.4.37 (centos) OpenSSL/1.1.1k mod_auth_gssapi/1.6.1"


# --- TLS material --------------------------------------------------------------------------------

def tls_paths() -> tuple[str, str, str]:
    """(ca.pem, server.pem, server-key.pem) of the shared test TLS material, as file paths."""
    base = importlib.resources.files("ovirt_cloudprovider.simulators") / "tls"
    return str(base / "ca.pem"), str(base / "server.pem"), str(base / "server-key.pem")


# --- clock ---------------------------------------------------------------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")
