"""core/nodegroups.py: ownership marks, names, target sizes, scale-up and scale-down decisions, the template node."""

from __future__ import annotations

from ovirt_cloudprovider.core import nodegroups as ng
from ovirt_cloudprovider.core.nodegroups import GroupVm, TemplateInfo
from ovirt_cloudprovider.core.settings import NodeGroupConfig, NodesConfig

A = NodeGroupConfig(name="a", template="t", cluster="east-a", min_size=1, max_size=3, tags=("k8s", "auto"))
B = NodeGroupConfig(name="b", template="t", cluster="east-a", max_size=2, name_prefix="bee")
ID1, ID2, ID3 = ("11111111-1111-1111-1111-11111111111" + str(i) for i in range(1, 4))


def _vm(vm_id: str, group: str, status: str = "up", tags: tuple[str, ...] = ()) -> GroupVm:
    return GroupVm(id=vm_id, name=f"{group}-{vm_id[-1]}", status=status, group=group, tags=tags)


def test_mark_round_trip() -> None:
    assert ng.mark("a") == "ovirt-cloudprovider-nodegroup:a"
    assert ng.group_of(ng.mark("a")) == "a"
    for other in (None, "", "ovirt-cloudprovider-nodegroup:", "ovirt-cloudprovider-nodegroup:a b", "a",
                  "ovirt-cloudprovider-nodegroup: a"):
        assert ng.group_of(other) is None
    assert ng.MARK_SEARCH == "description=ovirt-cloudprovider-nodegroup:*"


def test_names_use_the_prefix() -> None:
    assert ng.vm_name(A, "x1y2z") == "a-x1y2z" and ng.vm_name(B, "x1y2z") == "bee-x1y2z"


def test_members_drop_unknown_groups_and_duplicates() -> None:
    vms = [_vm(ID1, "a"), _vm(ID2, "zzz"), _vm(ID3, "b"), _vm(ID1.upper(), "a")]
    got = ng.members([A, B], vms)
    assert {k: [v.id for v in vs] for k, vs in got.items()} == {"a": [ID1], "b": [ID3]}
    assert ng.snapshot_by_provider_id(got) == {ID1: "a", ID3: "b"}


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
