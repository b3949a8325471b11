"""Informers cache LazyObjects from the real apiserver: equal to what the server returns,
with nested values still undecoded and out of the cyclic GC's sight, over WatchList and
over the paginated LIST path."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import orjson
import pytest
from helpers import cm

from pycontroller._util._wait import wait_for
from pycontroller.cache._informer_factory import SharedInformerFactory, wait_for_cache_sync
from pycontroller.cache._mutation_detector import ENV_CACHE_MUTATION_DETECTOR
from pycontroller.client import CONFIGMAPS, Client, LazyObject

# With the C module (where built) and with the pure-Python code.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lazy_impl")]


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("use_watch_list", [True, False])
def test_cached_objects_are_lazy_and_equal_to_the_server_state(
    kube_client: Client, kube_namespace: str, stop: threading.Event, use_watch_list: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The mutation detector (on under the pytest plugin) decodes every cached object fully.
    monkeypatch.delenv(ENV_CACHE_MUTATION_DETECTOR, raising=False)
    kube_client.create(CONFIGMAPS, cm("listed", "1"), kube_namespace)
    factory = SharedInformerFactory(kube_client, namespace=kube_namespace,
                                    informer_options={"use_watch_list": use_watch_list})
    informer = factory.informer_for(CONFIGMAPS)
    factory.start(stop)
    assert wait_for_cache_sync(stop, informer.has_synced, timeout=30)
    kube_client.create(CONFIGMAPS, cm("watched", "2"), kube_namespace)
    wait_for(lambda: informer.lister.get("watched", namespace=kube_namespace), timeout=15)

    for name, value in (("listed", "1"), ("watched", "2")):
        cached = informer.lister.get(name, namespace=kube_namespace)
        assert isinstance(cached, LazyObject)
        assert not cached.is_decoded("data")  # nobody has read it yet
        # nothing in the cache for the cyclic GC to walk
        assert not gc.is_tracked(cached) and not gc.is_tracked(cached["metadata"])
        assert "managedFields" not in cached["metadata"]  # dropped undecoded
        server = kube_client.get(CONFIGMAPS, name, kube_namespace)
        server["metadata"].pop("managedFields", None)
        assert orjson.loads(orjson.dumps(cached)) == server  # the stored JSON, as served
        assert cached["data"] == {"v": value} and cached == server
        assert not gc.is_tracked(cached)  # what it decoded on read stays out too
    # the caller's own objects (not cached) stay with the collector: they may be changed
    (listed, *_) = kube_client.list(CONFIGMAPS, kube_namespace)["items"]
    assert isinstance(listed, LazyObject) and gc.is_tracked(listed)
    stop.set()
    factory.shutdown(10)
