"""A realistic, deterministic generated fleet (:func:`generate_fleet`) for tests, benchmarks and the demo."""

from __future__ import annotations

import datetime as dt
import random

from .constants import VDC_START, GiB, _now
from .model import Fleet, GuestDevice, GuestOS, _rand_mac


def _container_devices(rng: random.Random, pod_octet: int) -> list[GuestDevice]:
    """Interfaces a Kubernetes node's guest agent reports besides its real NICs (to be ignored later)."""
    devs = [GuestDevice("docker0", _rand_mac(rng, 0x02, 0x42), ["172.17.0.1"])]
    kind = rng.randrange(3)
    if kind == 0:  # calico
        devs.append(GuestDevice("tunl0", "00:00:00:00:00:00", [f"10.244.{pod_octet}.0"]))
        for _ in range(rng.randrange(1, 3)):
            devs.append(GuestDevice(f"cali{rng.randrange(16**11):011x}", "ee:ee:ee:ee:ee:ee",
                                    ["fe80::ecee:eeff:feee:eeee"]))
    elif kind == 1:  # flannel
        devs.append(GuestDevice("flannel.1", _rand_mac(rng, 0x0A), [f"10.244.{pod_octet}.0"]))
        devs.append(GuestDevice("cni0", _rand_mac(rng, 0x0E), [f"10.244.{pod_octet}.1"]))
    devs.append(GuestDevice(f"veth{rng.randrange(16**7):07x}", _rand_mac(rng, 0x1A),
                            [f"fe80::18{rng.randrange(256):02x}:ff:fe00:{rng.randrange(16**4):x}"]))
    return devs


_GUEST_OSES = (
    # os_type, distribution, version, kernel (arch appended), codename
    ("rhel_9x64", "Red Hat Enterprise Linux", "9.3", "5.14.0-362.13.1.el9_3.", "Plow"),
    ("rhel_8x64", "Red Hat Enterprise Linux", "8.9", "4.18.0-513.9.1.el8_9.", "Ootpa"),
    ("rhel_9x64", "CentOS Stream", "9", "5.14.0-391.el9.", ""),
    ("other_linux", "Ubuntu", "22.04", "5.15.0-91-generic", "jammy"),
    ("debian_9", "Debian GNU/Linux", "12", "6.1.0-17-", "bookworm"),
    ("other_linux", "Fedora Linux", "39", "6.6.8-200.fc39.", ""),
)


def _guest_os(rng: random.Random, arch: str) -> tuple[str, GuestOS]:
    os_type, dist, ver, kernel, codename = rng.choice(_GUEST_OSES)
    if kernel.endswith("."):
        kernel += arch
    elif kernel.endswith("-"):
        kernel += "amd64" if arch == "x86_64" else "arm64"
    if arch == "aarch64" and os_type.startswith("rhel"):
        os_type = os_type.replace("x64", "")  # oVirt names the aarch64 variants without "x64"
    return os_type, GuestOS(dist, ver, kernel, arch, codename)


def generate_fleet(
    n: int, seed: int = 0, *, untagged: int = 0, control_plane: int = 3, quirks: bool = True, hosts: int = 9,
) -> Fleet:
    """A realistic, deterministic fleet: ``n`` VMs tagged for Kubernetes plus ``untagged`` other VMs.

    Layout: data centers ``dc-east`` (clusters ``east-a``, ``east-b``, x86_64) and ``dc-west`` (cluster
    ``west-arm``, aarch64), ``hosts`` hosts (9: three per cluster) shared out over the clusters; tags
    ``kubernetes`` with the children
    ``k8s-control-plane`` and ``k8s-worker``, plus an unrelated ``backup``. Of the ``n`` Kubernetes VMs the
    first ``control_plane`` are ``k8s-cp-N`` (tag ``k8s-control-plane``, always up); the others are
    ``k8s-worker-NNNN`` tagged ``kubernetes`` or ``k8s-worker`` (so ``tag=kubernetes`` matches all ``n``).
    Workers are mostly up, some down/suspended/migrating/paused/not_responding/unknown/powering_up; a few
    running ones have no guest agent; guests report eth0 (about half dual-stack, global IPv6 + link-local),
    sometimes an eth1, ``lo``, and container interfaces (docker0, cali*, tunl0, flannel.1, cni0, veth*).
    With ``quirks`` a few agents report no FQDN or ``localhost.localdomain``, as real guests do.
    """
    fleet = Fleet(seed=seed, first_event_id=1000 + seed % 1000)
    rng = random.Random(seed)
    with fleet.lock:
        fleet.add_event(VDC_START, "Starting oVirt Engine.", user=False)
        east = fleet.add_datacenter("dc-east", description="East data center")
        west = fleet.add_datacenter("dc-west", description="West data center")
        clusters = [fleet.add_cluster("east-a", east.id), fleet.add_cluster("east-b", east.id),
                    fleet.add_cluster("west-arm", west.id, architecture="aarch64")]
        for i, c in enumerate(clusters):  # cluster by cluster: the default fleet is that of three per cluster
            for h in range(1, max(1, hosts) // len(clusters) + (i < max(1, hosts) % len(clusters)) + 1):
                fleet.add_host(f"{c.name}-host{h:02d}", c.id)
        k8s = fleet.add_tag("kubernetes", description="Kubernetes nodes")
        fleet.add_tag("k8s-control-plane", parent=k8s.name)
        fleet.add_tag("k8s-worker", parent=k8s.name)
        fleet.add_tag("backup", description="nightly backup")
        fleet.add_instance_type("Small", sockets=1, cores=1, memory=2 * 1024**3)
        fleet.add_instance_type("Medium", sockets=1, cores=2, memory=4 * 1024**3)
        fleet.add_instance_type("Large", sockets=2, cores=2, memory=8 * 1024**3)
        instance_types = list(fleet.instance_types.values())
        statuses = (["up"] * 80 + ["down"] * 7 + ["suspended"] * 3 + ["powering_up"] * 2
                    + ["not_responding"] * 2 + ["unknown"] * 2 + ["migrating"] * 2 + ["paused"] * 2)

        for i in range(n + untagged):
            k8s_vm = i < n
            cluster = clusters[0] if i < control_plane else rng.choice(clusters)
            dc = fleet.datacenters[cluster.datacenter_id]
            if not k8s_vm:
                name = f"{rng.choice(['db', 'web', 'legacy-app', 'ci-runner'])}-{i - n:03d}"
                tags = ["backup"] if rng.random() < 0.5 else []
                status = rng.choice(statuses)
            elif i < control_plane:
                name, tags, status = f"k8s-cp-{i}", ["k8s-control-plane"], "up"
            else:
                name = f"k8s-worker-{i:04d}"
                tags = ["kubernetes" if i % 2 else "k8s-worker"] + (["backup"] if rng.random() < 0.1 else [])
                status = rng.choice(statuses)
            agent = status not in ("down", "suspended") and not (k8s_vm and i >= control_plane
                                                                 and rng.random() < 0.05)
            os_type, gos = _guest_os(rng, cluster.architecture)
            it = rng.choice(instance_types) if rng.random() < 0.3 else None
            if it:
                sockets, cores, memory = it.sockets, it.cores, it.memory
            else:
                sockets, cores = rng.choice([1, 2, 4]), rng.choice([1, 2])
                memory = rng.choice([2, 4, 8, 16]) * GiB
            mac0 = fleet._mac()
            octet3 = i // 250 % 250
            ipv4 = f"10.{clusters.index(cluster) + 10}.{octet3}.{i % 250 + 2}"
            ips = [ipv4]
            if rng.random() < 0.5:
                ips.append(f"2001:db8:{clusters.index(cluster) + 10:x}:{octet3:x}::{i % 250 + 2:x}")
            ips.append(f"fe80::546f:{rng.randrange(256):02x}ff:fe{rng.randrange(256):02x}:"
                       f"{rng.randrange(16**4):x}")
            devices = [GuestDevice("eth0", mac0, ips)]
            macs = [mac0]
            if rng.random() < 0.25:
                mac1 = fleet._mac()
                macs.append(mac1)
                ip1 = f"192.168.{100 + clusters.index(cluster)}.{i % 250 + 2}"
                devices.append(GuestDevice("eth1", mac1, [ip1]))
            if rng.random() < 0.3:
                devices.insert(0, GuestDevice("lo", "00:00:00:00:00:00", ["127.0.0.1", "::1"]))
            if k8s_vm:
                devices += _container_devices(rng, i % 250)
            fqdn: str | None = f"{name}.{dc.name}.example.com"
            if quirks and agent:
                roll = rng.random()
                if roll < 0.03:
                    fqdn = None
                elif roll < 0.05:
                    fqdn = "localhost.localdomain"
            vm = fleet.add_vm(
                name, status=status, cluster=cluster.id, tags=tags, guest_agent=agent, fqdn=fqdn or "",
                devices=devices, guest_os=gos, sockets=sockets, cores=cores, threads=1, memory=memory,
                os_type=os_type, instance_type=it.name if it else None, event=False,
                description="Kubernetes node" if k8s_vm else "",
            )
            vm.vnic_macs = macs
            vm.creation_time = _now() - dt.timedelta(days=rng.randrange(1, 400), seconds=rng.randrange(86400))
    return fleet
