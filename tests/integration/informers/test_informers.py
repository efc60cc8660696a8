"""The shared list-and-watch against a real API server: pages, watch events, caching."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from modelfleet.informers import Informer, Key, Resource

CONFIG_MAPS = Resource("", "v1", "configmaps")


def _eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Parser:
    """The view is the `value` data key; counts the objects it was asked to parse."""

    def __init__(self) -> None:
        self.parsed: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, obj: dict[str, Any]) -> str:
        value = (obj.get("data") or {}).get("value", "")
        if value == "reject":
            raise ValueError("not understood")
        with self.lock:
            self.parsed.append(obj["metadata"]["name"])
        return str(value)


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def _create(core: client.CoreV1Api, namespace: str, name: str, value: str) -> None:
    body = {"metadata": {"name": name, "labels": {"test": "informer"}}, "data": {"value": value}}
    core.create_namespaced_config_map(namespace, body)


@pytest.fixture
def changes() -> list[tuple[Key, Any, Any]]:
    return []


@pytest.fixture
def informer(
    kube_client: client.ApiClient, namespace: str, changes: list[tuple[Key, Any, Any]]
) -> Iterator[Informer[str]]:
    informer = Informer(
        kube_client,
        CONFIG_MAPS,
        Parser(),
        namespaces=(namespace,),
        on_change=lambda key, old, new: changes.append((key, old, new)),
        page_size=2,
    )
    yield informer
    informer.stop()


def test_a_paginated_list_fills_the_store_and_the_watch_follows(
    core: client.CoreV1Api,
    namespace: str,
    informer: Informer[str],
    changes: list[tuple[Key, Any, Any]],
) -> None:
    for i in range(5):
        _create(core, namespace, f"cm-{i}", str(i))
    assert not informer.synced
    informer.start()
    assert informer.wait_synced(20)
    listed = {k: v for k, v in informer.items().items() if k[1].startswith("cm-")}
    assert listed == {(namespace, f"cm-{i}"): str(i) for i in range(5)}  # five, two a page

    core.patch_namespaced_config_map("cm-0", namespace, {"data": {"value": "changed"}})
    _create(core, namespace, "joined", "new")
    core.delete_namespaced_config_map("cm-1", namespace)
    _eventually(lambda: informer.get(namespace, "cm-0") == "changed", "the update")
    _eventually(lambda: informer.get(namespace, "joined") == "new", "the new object")
    _eventually(lambda: informer.get(namespace, "cm-1") is None, "the deletion")
    assert ((namespace, "cm-0"), "0", "changed") in changes
    assert ((namespace, "cm-1"), "1", None) in changes
    assert informer.get("elsewhere", "cm-0") is None


def test_an_object_parse_rejects_keeps_its_last_view(
    core: client.CoreV1Api, namespace: str, informer: Informer[str]
) -> None:
    _create(core, namespace, "skewed", "good")
    informer.start()
    assert informer.wait_synced(20)
    core.patch_namespaced_config_map("skewed", namespace, {"data": {"value": "reject"}})
    _create(core, namespace, "marker", "after")
    _eventually(lambda: informer.get(namespace, "marker") == "after", "a later event")
    assert informer.get(namespace, "skewed") == "good"


def test_a_relist_parses_only_objects_whose_version_changed(
    core: client.CoreV1Api, namespace: str, kube_client: client.ApiClient
) -> None:
    _create(core, namespace, "steady", "1")
    _create(core, namespace, "moving", "1")
    parser = Parser()
    informer = Informer(kube_client, CONFIG_MAPS, parser, namespaces=(namespace,))
    informer._relist(namespace)
    core.patch_namespaced_config_map("moving", namespace, {"data": {"value": "2"}})
    informer._relist(namespace)
    assert parser.parsed.count("steady") == 1
    assert parser.parsed.count("moving") == 2
    assert informer.get(namespace, "moving") == "2"
