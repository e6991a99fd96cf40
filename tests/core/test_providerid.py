"""The providerID format and VM-id spelling: one owner, :mod:`ovirt_cloudprovider.core.providerid`."""

from __future__ import annotations

from ovirt_cloudprovider.core.providerid import build, is_ovirt, normalize_vm_id, same_uuid, vm_id_of, vm_uuid


def test_build_writes_the_lowercase_uuid() -> None:
    assert build("1A2B3C4D-1122-3344-5566-778899AABBCC") == "ovirt://1a2b3c4d-1122-3344-5566-778899aabbcc"
    assert vm_id_of(build("1A2B3C4D-1122-3344-5566-778899AABBCC")) == "1a2b3c4d-1122-3344-5566-778899aabbcc"


def test_normalize_and_uuid() -> None:
    assert normalize_vm_id("  ABC ") == "abc"
    assert vm_uuid("{1A2B3C4D-1122-3344-5566-778899AABBCC}") == "1a2b3c4d-1122-3344-5566-778899aabbcc"
    assert vm_uuid("not-a-uuid") is None


def test_is_ovirt() -> None:
    assert is_ovirt("ovirt://x") and is_ovirt("ovirt:///x")
    assert not is_ovirt("aws:///i-1") and not is_ovirt(None) and not is_ovirt("")


def test_provider_vm_id_accepts_the_legacy_form() -> None:
    assert vm_id_of("ovirt://ABC-1") == "abc-1"
    assert vm_id_of("ovirt:///abc-1") == "abc-1"  # the in-tree provider's "/" + uuid
    assert vm_id_of("ovirt://") is None
    assert vm_id_of("aws:///i-1") is None
    assert vm_id_of(None) is None and vm_id_of("") is None


def test_same_uuid_ignores_case_and_mixed_endian() -> None:
    vm = "4a5b6c7d-1122-3344-5566-778899aabbcc"
    assert same_uuid(vm.upper(), vm)
    assert same_uuid("7d6c5b4a-2211-4433-5566-778899aabbcc", vm)
    assert not same_uuid("7d6c5b4a-2211-4433-6655-778899aabbcc", vm)
    assert not same_uuid(None, vm) and not same_uuid("", vm)

