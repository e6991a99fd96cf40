"""core/nodegroups.py: ownership marks, names, target sizes, scale-up and scale-down decisions, the template node."""

from __future__ import annotations

from dataclasses import replace

from ovirt_cloudprovider.core import nodegroups as ng
from ovirt_cloudprovider.core.nodegroups import GroupVm, TemplateInfo
from ovirt_cloudprovider.core.settings import NodeGroupConfig, NodesConfig

A = NodeGroupConfig(name="a", template="t", cluster="east-a", min_size=1, max_size=3, tags=("k8s", "auto"))
B = NodeGroupConfig(name="b", template="t", cluster="east-a", max_size=2, name_prefix="bee")
ID1, ID2, ID3 = ("11111111-1111-1111-1111-11111111111" + str(i) for i in range(1, 4))
KEY = b"0123456789abcdef" * 2
PLACE = TemplateInfo(id="t1", name="t", cpus=None, memory_bytes=None, architecture=None, os_type=None,
                     cluster="east-a", datacenter=None, cluster_id="c1", template_ids=("t1", "t2"))
PLACES = {"a": PLACE, "b": PLACE}
_PREFIX = {"a": "a", "b": "bee"}


def _vm(vm_id: str, group: str, status: str = "up", tags: tuple[str, ...] = (), *, name: str | None = None,
        key: bytes = KEY, cluster: str = "c1", templates: tuple[str, ...] = ("t1",)) -> GroupVm:
    """A VM of ``group`` as the autoscaler makes it (signed with KEY, in its cluster, from its template), or not."""
    name = name or f"{_PREFIX.get(group, group)}-{vm_id[-1]}"
    return GroupVm(id=vm_id, name=name, status=status, group=group, tags=tags, mac=ng.mark_mac(key, group, name),
                   cluster_id=cluster, template_ids=templates)


def test_mark_round_trip() -> None:
    assert ng.mark("a") == "ovirt-cloudprovider-nodegroup:a"
    assert ng.group_of(ng.mark("a")) == "a"
    signed = ng.signed_mark(KEY, "a", "a-0")
    assert ng.parse_mark(signed) == ("a", ng.mark_mac(KEY, "a", "a-0"))
    assert ng.parse_mark(ng.mark("a")) == ("a", "")
    assert len(ng.mark_mac(KEY, "a", "a-0")) == 64
    assert ng.mark_mac(KEY, "a", "a-0") != ng.mark_mac(KEY, "a", "a-1") != ng.mark_mac(KEY[::-1], "a", "a-1")
    for other in (None, "", "ovirt-cloudprovider-nodegroup:", "ovirt-cloudprovider-nodegroup:a b", "a",
                  "ovirt-cloudprovider-nodegroup: a"):
        assert ng.group_of(other) is None
    assert ng.MARK_SEARCH == "description=ovirt-cloudprovider-nodegroup:*"


def test_names_use_the_prefix_and_a_slot_below_max_size() -> None:
    assert ng.vm_name(A, "x1y2z") == "a-x1y2z" and ng.slot_name(B, 1) == "bee-1"
    assert [ng.slot_of(B, n) for n in ("bee-0", "bee-12", "bee-01", "bee-", "bee-x", "b-1", "bee-1-1")] == [
        0, 12, None, None, None, None, None]
    assert ng.free_slots(A, ["a-1", "hand-made", "a-7"]) == [0, 2]


def test_members_drop_unknown_groups_and_duplicates() -> None:
    vms = [_vm(ID1, "a"), _vm(ID2, "zzz"), _vm(ID3, "b"), _vm(ID1.upper(), "a")]
    got = ng.members([A, B], vms, KEY, PLACES)
    assert {k: [v.id for v in vs] for k, vs in got.groups.items()} == {"a": [ID1], "b": [ID3]}
    assert got.unverified == ()  # another autoscaler's group is none of ours
    assert ng.snapshot_by_provider_id(got.groups) == {ID1: "a", ID3: "b"}


def test_only_a_verified_mark_in_the_groups_place_makes_a_member() -> None:
    forged = [
        (GroupVm(id=ID1, name="a-1", status="down", group="a"), "does not verify"),  # the old, unsigned mark
        (_vm(ID1, "a", key=b"x" * 32), "does not verify"),  # another key
        (replace(_vm(ID2, "a"), id=ID1, name="a-9"), "does not verify"),  # a mark copied onto a VM of another name
        (_vm(ID1, "a", name="tenant-a"), "is not a-<number>"),  # signed (a leaked key) but not named as the group's
        (_vm(ID1, "a", cluster="c2"), "not in the cluster east-a"),
        (_vm(ID1, "a", templates=("blank",)), "not made from the template t"),
        (_vm(ID1, "b"), "names b"),
    ]
    for vm, why in forged:
        assert why in (ng.ownership_problem(A, vm, KEY, PLACE) or ""), vm
    assert ng.ownership_problem(A, _vm(ID1, "a", templates=("blank", "t2")), KEY, PLACE) is None  # original_template
    got = ng.members([A, B], [forged[0][0], _vm(ID2, "a")], KEY, PLACES)
    assert [v.id for v in got.groups["a"]] == [ID2] and [(v.id, "verify" in w) for v, w in got.unverified] == [
        (ID1, True)]
    assert ng.members([A], [_vm(ID2, "a")], KEY, {}).groups["a"] == ()  # no known place: no member


def test_increase_bounds() -> None:
    assert ng.increase_problem(A, 1, 2) is None
    assert "exceed max_size 3" in (ng.increase_problem(A, 2, 2) or "")
    assert "must be positive" in (ng.increase_problem(A, 0, 0) or "")


def test_deletion_only_own_vms_never_below_min() -> None:
    vms = (_vm(ID1, "a"), _vm(ID2, "a"))
    ok = ng.deletion(A, vms, [f"ovirt://{ID2}"])
    assert ok.problem is None and [v.id for v in ok.vms] == [ID2]
    below = ng.deletion(A, vms, [f"ovirt://{ID1}", f"ovirt://{ID2}"])
    assert below.vms == () and "below min_size 1" in (below.problem or "")
    foreign = ng.deletion(A, vms, [f"ovirt://{ID2}", f"ovirt://{ID3}"])
    assert foreign.vms == () and ID3 in (foreign.problem or "")
    assert ng.deletion(A, vms, ["aws:///i-1"]).problem is not None
    assert ng.deletion(A, vms, [""]).problem is not None


def test_deletion_counts_what_other_requests_are_removing_as_gone() -> None:
    vms = (_vm(ID1, "a"), _vm(ID2, "a"), _vm(ID3, "a"))  # min 1 + 2
    assert ng.deletion(A, vms, [f"ovirt://{ID2}"], removing=[ID1]).problem is None
    last = ng.deletion(A, vms, [f"ovirt://{ID3}"], removing=[ID1, ID2.upper()])
    assert last.vms == () and "of its 1 VMs (2 more being removed) would go below min_size 1" in (last.problem or "")
    twice = ng.deletion(A, vms, [f"ovirt://{ID1}"], removing=[ID1])
    assert twice.vms == () and "already being removed" in (twice.problem or "")


def test_instance_states_and_repairs() -> None:
    assert ng.instance_state("image_locked") == ng.INSTANCE_CREATING
    assert ng.instance_state("powering_up") == ng.INSTANCE_CREATING
    assert ng.instance_state("up") == ng.INSTANCE_RUNNING
    assert ng.instance_state("powering_down") == ng.INSTANCE_DELETING
    vms = (_vm(ID1, "a", "down"), _vm(ID2, "a", "up"), _vm(ID3, "a", "image_locked"))
    assert [v.id for v in ng.to_start(vms)] == [ID1]
    assert ng.missing_tags(A, _vm(ID1, "a", tags=("auto",))) == ("k8s",)


def test_template_node_labels_as_the_node_controller_sets_them() -> None:
    info = TemplateInfo(id="t1", name="t", cpus=4, memory_bytes=8 * 1024**3, architecture="aarch64",
                        os_type="rhel_9x64", cluster="east-a", datacenter="dc-east")
    node = ng.template_node(A, info, NodesConfig(extra_labels=(("team", "x"),)))
    labels = dict(node.labels)
    assert labels["topology.kubernetes.io/zone"] == "east-a"
    assert labels["topology.kubernetes.io/region"] == "dc-east"
    assert labels["kubernetes.io/arch"] == "arm64" and node.architecture == "arm64"
    assert labels["kubernetes.io/os"] == "linux" and labels["team"] == "x"
    assert labels["node.kubernetes.io/instance-type"] == "4cpu-8gib"
    assert dict(node.capacity) == {"cpu": "4", "memory": f"{8 * 1024**2}Ki", "pods": "110"}
    sized = ng.template_node(NodeGroupConfig(name="s", template="t", cluster="east-a", max_size=1, cpus=2,
                                             memory=3072), info, NodesConfig())
    assert dict(sized.capacity)["cpu"] == "2" and dict(sized.labels)["node.kubernetes.io/instance-type"] == "2cpu-3gib"
