"""A hostile review of the writer's extension (``more``) and its work queue: a failing extension, a failing task,
leadership lost while the extension plans. Real HTTP to the kube API simulator through the real client."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s

from ovirt_cloudprovider.core.records import TAINT_UNINITIALIZED, Action, ApplyResult
from ovirt_cloudprovider.kube.writer import NodeWriter
from ovirt_cloudprovider.simulators.kubeapi import KubeApiSimulator
from tests.kube.test_scale_writes import initializations, specs


def apply_bounded(writer: NodeWriter, actions: Sequence[Action], **kwargs: Any) -> tuple[ApplyResult | None,
                                                                                      list[BaseException], list[str]]:
    """``writer.apply`` in a thread joined for at most 20 s: its result (None when it hung or raised), what it
    raised, and the names of the threads that died of an exception meanwhile."""
    got: list[ApplyResult] = []
    raised: list[BaseException] = []
    died: list[str] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        died.append(args.thread.name if args.thread is not None else "?")

    def run() -> None:
        try:
            got.append(writer.apply(actions, **kwargs))
        except BaseException as exc:  # reported to the test
            raised.append(exc)

    threading.excepthook = hook
    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "apply hung"
    finally:
        threading.excepthook = previous
    return (got[0] if got else None), raised, died


def initialized(kubeapi: KubeApiSimulator, name: str, spec: Any) -> bool:
    node = kubeapi.get_node(name) or {}
    return (node.get("spec", {}).get("providerID") == spec.provider_id
            and TAINT_UNINITIALIZED not in {t["key"] for t in node["spec"].get("taints") or []}
            and [(a["type"], a["address"]) for a in node["status"].get("addresses") or []]
            == [(a.type, a.address) for a in spec.addresses])


def test_an_extension_that_raises_loses_no_queued_write_and_kills_no_worker(
        kubeapi: KubeApiSimulator, kube_api_client: k8s.ApiClient) -> None:
    """``more`` (the controller's extension: planning of the kubelets that joined meanwhile) raising must neither
    kill the writer's workers (a traceback, and the steps they left queued never sent: nodes without their
    addresses or Events while the sweep says it succeeded) nor hang the apply; the apply reports it as a failure
    (the controller then sweeps in full, which plans whatever the extension had taken)."""
    actions = initializations(kubeapi, 12)
    asked: list[int] = []

    def more() -> Sequence[Action]:
        asked.append(1)
        raise RuntimeError("planning failed")

    result, raised, died = apply_bounded(NodeWriter(kube_api_client, workers=3, event_repeat_interval=0.0),
                                         actions, more=more)
    assert died == [], died
    assert raised == [], raised
    assert result is not None and result.applied == 12, result
    assert result.failed >= 1 and any("planning failed" in e for e in result.errors), result
    assert len(asked) == 1  # asked once: a failing extension is not asked again
    for spec in specs(12):
        assert initialized(kubeapi, spec.name, spec), spec.name
        assert [e["reason"] for e in kubeapi.list_events(involved_name=spec.name)] == ["InitializedNode"]


def test_the_extension_is_not_asked_once_the_fence_says_no(kubeapi: KubeApiSimulator,
                                                           kube_api_client: k8s.ApiClient) -> None:
    """Leadership lost while the apply runs: the extension (which takes the joining nodes' triggers off the
    controller's schedule and plans them) is not asked any more; nothing is written after the fence said no."""
    actions = initializations(kubeapi, 3)
    kubeapi.reset_counts()
    asked: list[int] = []

    def patched() -> int:
        return sum(1 for r in kubeapi.requests if r.verb == "patch")

    def may_write() -> bool:  # leadership lost once the three initializing patches are sent
        return patched() < 3

    def more() -> Sequence[Action]:
        asked.append(1)
        return ()

    result, raised, died = apply_bounded(NodeWriter(kube_api_client, workers=1, event_repeat_interval=0.0),
                                         actions, may_write=may_write, more=more)
    assert (died, raised) == ([], [])
    assert result is not None and result.interrupted == 3 and result.failed == 0, result
    assert asked == []
    assert patched() == 3 and kubeapi.list_events() == []
