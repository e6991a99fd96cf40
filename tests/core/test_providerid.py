"""The providerID format and VM-id spelling: one owner, :mod:`ovirt_cloudprovider.core.providerid`."""

from __future__ import annotations

import pytest

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


VM = "4a5b6c7d-1122-3344-5566-778899aabbcc"


@pytest.mark.parametrize("provider_id", [
    f"ovirt://{VM}", f"ovirt://{VM.upper()}", f"ovirt:///{VM}",  # the in-tree provider's "/" + uuid
    f"ovirt://{VM.replace('-', '')}", f"ovirt://{{{VM}}}", f"ovirt:///{{{VM.upper()}}}",
    f"ovirt://{VM.replace('-', '').upper()}",
])
def test_vm_id_of_reads_every_spelling_of_a_vm_id(provider_id: str) -> None:
    assert vm_id_of(provider_id) == VM


@pytest.mark.parametrize("provider_id", [
    "ovirt://", "ovirt:///", "ovirt://not-a-uuid", "ovirt://abc-1", f"ovirt://{VM}/extra", f"ovirt:////{VM}",
    f"ovirt://{VM}x", f"ovirt://{VM[:-1]}", f"ovirt://{{{VM}", "ovirt://4a5b-6c7d-1122-3344-5566778899aabbcc",
    f"aws:///{VM}", None, "",
])
def test_vm_id_of_refuses_anything_else(provider_id: str | None) -> None:
    assert vm_id_of(provider_id) is None


def test_same_uuid_ignores_case_and_mixed_endian() -> None:
    vm = "4a5b6c7d-1122-3344-5566-778899aabbcc"
    assert same_uuid(vm.upper(), vm)
    assert same_uuid("7d6c5b4a-2211-4433-5566-778899aabbcc", vm)
    assert not same_uuid("7d6c5b4a-2211-4433-6655-778899aabbcc", vm)
    assert not same_uuid(None, vm) and not same_uuid("", vm)

