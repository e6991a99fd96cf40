"""Engine answer fuzz: at least 1,000 mutated answers to the discovery search (``OVCP_FUZZ_ENGINE`` cases, seeded by
``OVCP_FUZZ_SEED``), each through a full sweep (the real SDK, planner, writer) against a cluster that already has
kubelet nodes, our placeholders and a foreign node. Never a traceback, never an exception out of the sweep, and
the nodes after the sweep equal the nodes before (the absence counter, our bookkeeping, aside; it is reset by a
healthy sweep, which must leave the nodes exactly as they were).

Mutated bodies are served by the engine simulator's ``serve_static`` (every search gets them; GETs by id stay
real). One simulator pair and one logged-in client serve every case; the state is reset only after a case that
wrote.
"""

from __future__ import annotations

import os
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest

from ovirt_cloudprovider.controller import run_sweep
from ovirt_cloudprovider.engine.records import DISCOVERY_FOLLOW
from ovirt_cloudprovider.kube.informer import NodeCache
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.faults.conftest import FIGURES, LogTap
from tests.faults.world import FaultWorld, _loosen, make_engine, node_state

CASES = int(os.environ.get("OVCP_FUZZ_ENGINE", "1000"))
SEED = int(os.environ.get("OVCP_FUZZ_SEED", "20261201"))

Mutator = Callable[[random.Random, ET.Element], None]


def _vms(root: ET.Element) -> list[ET.Element]:
    return [e for e in root if e.tag == "vm"]


def _pick(rng: random.Random, root: ET.Element) -> ET.Element | None:
    vms = _vms(root)
    return rng.choice(vms) if vms else None


def m_drop_id(rng: random.Random, root: ET.Element) -> None:
    if (vm := _pick(rng, root)) is not None:
        vm.attrib.pop("id", None)


def m_duplicate(rng: random.Random, root: ET.Element) -> None:
    if (vm := _pick(rng, root)) is not None:
        twin = ET.fromstring(ET.tostring(vm))
        if rng.random() < 0.5 and (name := twin.find("name")) is not None:
            name.text = f"twin-{rng.randrange(1000)}"
        if rng.random() < 0.5:  # the same UUID in another spelling (issue 17, rule 5)
            vm_id = twin.get("id", "")
            twin.set("id", rng.choice([vm_id.upper(), vm_id.replace("-", "")]))
        root.insert(rng.randrange(len(root) + 1), twin)


def m_steal_id(rng: random.Random, root: ET.Element) -> None:
    vms = _vms(root)
    if len(vms) >= 2:
        a, b = rng.sample(vms, 2)
        a.set("id", b.get("id", ""))


def m_odd_status(rng: random.Random, root: ET.Element) -> None:
    if (vm := _pick(rng, root)) is not None and (st := vm.find("status")) is not None:
        st.text = rng.choice(["", "UP ", "unknown", "not_responding", "image_locked", "migrating", "wait_for_launch",
                              "\u00fcp", "x" * 5000, "up\x7f", "reboot_in_progress", "saving_state", "restoring_state"])


def m_name(rng: random.Random, root: ET.Element) -> None:
    if (vm := _pick(rng, root)) is not None and (name := vm.find("name")) is not None:
        name.text = rng.choice(["", "x" * 70000, "Ünïcødé-节点", "a/b", "-lead", "UPPER", "name with space", "a" * 64,
                                "dot.ted.", "\u202egnp.exe", "%2e%2e", "a\tb"])


def m_ip(rng: random.Random, root: ET.Element) -> None:
    addrs = [e for e in root.iter("address")]
    for e in rng.sample(addrs, k=min(len(addrs), rng.randint(1, 3))):
        # garbled only: a valid but unusable address (0.0.0.0, fe80::1) is a real change of the guest's network
        e.text = rng.choice(["999.1.1.1", "::g", "10.0.0.1/33", "localhost", "1.2.3", "10.0.0.1 10.0.0.2",
                             "x" * 300, "\u0661.1.1.1", "10.0.0.1\x7f", "::ffff:999.0.0.1", "1e100"])


def m_drop_vms(rng: random.Random, root: ET.Element) -> None:
    for vm in _vms(root):
        if rng.random() < 0.4:
            root.remove(vm)


def m_drop_children(rng: random.Random, root: ET.Element) -> None:
    # what every VM has (dropping an optional part, instance_type or fqdn, is a valid, different answer)
    if (vm := _pick(rng, root)) is not None:
        for child in list(vm):
            if child.tag in ("cluster", "host", "name", "status", "cpu", "memory", "tags") and rng.random() < 0.5:
                vm.remove(child)


def m_wrong_root(rng: random.Random, root: ET.Element) -> None:
    root.tag = rng.choice(["vm", "hosts", "fault", "action", "api", "Vms", "html"])


def m_junk_elements(rng: random.Random, root: ET.Element) -> None:
    if (vm := _pick(rng, root)) is not None:
        junk = ET.SubElement(vm, rng.choice(["cluster", "host", "tags", "reported_devices", "weird"]))
        junk.text = rng.choice(["", "\u0000".replace("\u0000", ""), "<", "x" * 1000])
        junk.set("id", rng.choice(["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"]))


TREE_MUTATORS: list[Mutator] = [m_drop_id, m_duplicate, m_steal_id, m_odd_status, m_name, m_ip, m_drop_vms,
                                m_drop_children, m_wrong_root, m_junk_elements]


def raw_mutation(rng: random.Random, body: bytes) -> tuple[bytes, str, int]:
    """A byte-level mutation: (body, content type, status)."""
    kind = rng.randrange(9)
    xml_ct = "application/xml"
    if kind == 0:
        return body[: rng.randrange(len(body))], xml_ct, 200  # truncated
    if kind == 1:
        return b"", xml_ct, 200  # empty 200
    if kind == 2:
        return b"<html><head><title>Login</title></head><body>SSO</body></html>", "text/html", 200
    if kind == 3:
        data = bytearray(body)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), xml_ct, 200  # flipped bytes
    if kind == 4:
        return b"\xef\xbb\xbf" + body, xml_ct, 200  # BOM
    if kind == 5:
        return body.replace(b"encoding='utf-8'", b"encoding='ebcdic'").replace(b'encoding="UTF-8"',
                                                                             b'encoding="bogus"'), xml_ct, 200
    if kind == 6:
        return (b'<?xml version="1.0"?><!DOCTYPE vms [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
                b"<vms><vm id='x'><name>&b;&b;</name></vm></vms>"), xml_ct, 200
    if kind == 7:
        return body, rng.choice(["text/plain", "application/json", ""]), rng.choice([200, 201, 204, 206])
    return body.replace(b"<vms>", b"<vms>" + b"\x00" * rng.randint(1, 3)), xml_ct, 200


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[EngineSimulator, KubeApiSimulator]]:
    with make_engine(vms=5) as engine, KubeApiSimulator() as kube:  # small answers: the SDK parses each one
        yield engine, kube


def test_mutated_engine_answers(sims: tuple[EngineSimulator, KubeApiSimulator], logtap: LogTap) -> None:
    engine, kube = sims
    world = FaultWorld(engine, kube, logtap, page_size=100)
    cache = NodeCache(world.api)
    cache.start()
    rng = random.Random(SEED)
    lost = wrong = escaped = 0
    failures: list[str] = []
    try:
        world.baseline()
        base = engine._api_body(["vms"], {"search": "tag=kubernetes sortby name asc page 1", "max": "100",
                                          "follow": DISCOVERY_FOLLOW})
        assert base is not None
        strict = world.before
        loose = {k: _loosen(v) for k, v in strict.items()}
        for case in range(CASES):
            if rng.random() < 0.45:
                body, ctype, status = raw_mutation(rng, base)
                how = "raw"
            else:
                root = ET.fromstring(base)
                # dropping VMs first: a stolen id must stay a duplicate, not become a valid rename
                chosen = sorted(rng.sample(TREE_MUTATORS, k=rng.randint(1, 3)), key=lambda m: m is not m_drop_vms)
                how = ",".join(m.__name__ for m in chosen)
                for mutate in chosen:
                    mutate(rng, root)
                body, ctype, status = ET.tostring(root, encoding="utf-8", xml_declaration=True), "application/xml", 200
            engine.serve_static("/vms", body, status=status, content_type=ctype)
            kube.reset_counts()
            assert cache.wait_synced(10)
            try:
                run_sweep(config=world.config, engine=world.client, nodes=cache.nodes(), writer=world.writer,
                          metrics=world.metrics)
            except Exception as exc:  # an exception out of a sweep is a finding, counted below
                escaped += 1
                failures.append(f"case {case}: {exc.__class__.__name__}: {exc}"[:300])
            if kube.writes("nodes") + kube.writes("nodes/status"):
                now = node_state(kube, strict=False)
                bad = [n for n in set(loose) | set(now) if _loosen(now[n]) != loose[n]] if set(now) == set(loose) \
                    else sorted(set(loose) ^ set(now))
                lost += len(set(loose) - set(now))
                wrong += len([n for n in bad if n in now])
                if bad:
                    diff = _diff(loose[bad[0]], now[bad[0]]) if bad[0] in now and bad[0] in loose else "lost"
                    failures.append(f"case {case} ({how}): nodes {bad[:5]} changed: {diff}")
                engine.clear_static()
                world.converge()
                if node_state(kube, strict=True) != strict:
                    wrong += 1
                    failures.append(f"case {case}: no exact return to the baseline")
                    world.before = strict = node_state(kube, strict=True)
                    loose = {k: _loosen(v) for k, v in strict.items()}
        engine.clear_static()
        out = world.finish("fuzz-engine", lost=lost, wrong=wrong)
        FIGURES.record("fuzz-engine", cases=CASES - 1, tracebacks=escaped)
        assert (out.nodes_lost, out.wrong_writes, out.tracebacks + escaped, out.secret_sightings) == (0, 0, 0, 0), \
            "\n".join([out.detail, *failures[:10]])
    finally:
        cache.stop()
        engine.clear_static()
        world.close()


def _diff(before: str, after: str) -> str:
    import json
    a, b = json.loads(before), json.loads(_loosen(after))
    return "; ".join(f"{k}: {a[k]} -> {b[k]}" for k in a if a[k] != b[k])[:600]


def test_the_mutators_do_mutate() -> None:
    rng = random.Random(1)
    with make_engine() as engine:
        base = engine._api_body(["vms"], {"search": "tag=kubernetes", "follow": DISCOVERY_FOLLOW})
    assert base is not None and re.search(rb"<vm ", base)
    for mutate in TREE_MUTATORS:
        root = ET.fromstring(base)
        for _ in range(5):
            mutate(rng, root)
        assert ET.tostring(root) != ET.tostring(ET.fromstring(base)), mutate.__name__
