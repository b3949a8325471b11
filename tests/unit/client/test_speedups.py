"""The optional C module ``pycontroller._speedups`` builds what the Python code builds.

The decoding tests (test_lazy.py, test_shaped_decoding.py, the integration test of the
cache) run with both; these compare the two directly and look for what only C can get
wrong: references leaked or dropped, and the module missing where it should be built.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import random
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values
from msgspec import UNSET

from pycontroller.client import _lazy
from pycontroller.client._lazy import EventDecoder, LazyObject

needs_c = pytest.mark.skipif(_lazy.SPEEDUPS is None, reason="pycontroller._speedups not built")

POD: dict[str, Any] = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {
        "name": "web-1", "generateName": "web-", "namespace": "shop", "uid": "u-1",
        "resourceVersion": "42", "generation": 3, "creationTimestamp": "2026-12-01T00:00:00Z",
        "labels": {"app": "web", "k" * 40: "v"}, "annotations": {"a": "x" * 100},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "r"}],
        "finalizers": ["example.com/f"], "managedFields": [{"manager": "kubelet"}],
    },
    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    "status": {"phase": "Running"},
}


def _shaped(obj: Any) -> Any:
    return _lazy._SHAPED_EVENT_DECODER.decode(orjson.dumps({"type": "ADDED", "object": obj}))


def test_the_c_module_is_built_where_a_c_compiler_is() -> None:
    """The build hook (hatch_build.py) compiles it on every install with a compiler; CI
    machines have one, so the C code is what the suite measures and tests."""
    if os.environ.get("PYCONTROLLER_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("PYCONTROLLER_PURE_PYTHON is set")
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    assert _lazy.SPEEDUPS is not None, "reinstall the package (./dev test does): " \
        "pycontroller._speedups was not built or does not import"


@pytest.mark.parametrize("pure", ["", "1"])
def test_an_editable_rebuild_without_the_module_leaves_no_stale_one_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: str,
) -> None:
    """``pip install -e .`` (./dev) hides the hook's warning: a compile error in an edited
    _speedups.c, a compiler gone or PYCONTROLLER_PURE_PYTHON must not leave the previous
    build in the checkout, imported and tested as if it were the new one."""
    pytest.importorskip("hatchling")
    spec = importlib.util.spec_from_file_location(
        "hatch_build", Path(__file__).parents[3] / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    hook_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook_module)
    (tmp_path / "pycontroller").mkdir()
    (tmp_path / hook_module.SOURCE).write_text("#error an edit that does not compile\n")
    stale = tmp_path / "pycontroller" / f"_speedups{sysconfig.get_config_var('EXT_SUFFIX')}"
    stale.write_bytes(b"the previous build")
    monkeypatch.setenv("PYCONTROLLER_PURE_PYTHON", pure)
    hook = hook_module.SpeedupsHook(str(tmp_path), {}, None, None, str(tmp_path), "wheel")
    hook.initialize("editable", {"force_include": {}})
    assert not stale.exists()


def test_pure_python_on_request() -> None:
    code = "from pycontroller.client import _lazy; print(_lazy.SPEEDUPS, _lazy._C)"
    env = {**os.environ, "PYCONTROLLER_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.split() == ["None", "None"]


@pytest.mark.parametrize(("abi", "error"), [
    (None, TypeError), (0, TypeError), (1, TypeError), (1, ValueError), (1, AttributeError)])
def test_a_stale_build_falls_back_to_python_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, abi: int | None, error: type[Exception],
) -> None:
    def configure(*args: Any) -> None:
        raise error("as a configure of another version might")

    stale = types.ModuleType("pycontroller._speedups")
    stale.__file__ = "/somewhere/_speedups.so"
    stale.configure = configure  # type: ignore[attr-defined]
    if abi is not None:
        stale.ABI = abi  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycontroller._speedups", stale)
    monkeypatch.delenv("PYCONTROLLER_PURE_PYTHON", raising=False)
    with pytest.warns(RuntimeWarning, match="does not match this version"):
        assert _lazy._load_speedups() is None


def same(a: Any, b: Any, path: str = "$") -> None:
    """``a`` and ``b`` are built alike: same types, key order, pending keys and values,
    the same strings shared (the string table's copy) and the same containers tracked."""
    assert type(a) is type(b), path
    if isinstance(a, LazyObject):
        assert a._lazy == b._lazy, path
        assert a._lazy is b._lazy or a._lazy is None, path  # the shared tuples
    if isinstance(a, dict | list):
        assert gc.is_tracked(a) == gc.is_tracked(b), path
    if isinstance(a, dict):
        assert list(dict.keys(a)) == list(dict.keys(b)), path
        assert list(map(shared, dict.keys(a))) == list(map(shared, dict.keys(b))), path
        for key, value in dict.items(a):
            same(value, dict.__getitem__(b, key), f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, orjson.Fragment):
        assert orjson.dumps(a) == orjson.dumps(b), path
    else:
        assert a == b, path
        assert shared(a) == shared(b), path


def shared(value: Any) -> bool:
    return isinstance(value, str) and _lazy._STRINGS.get(value) is value


def both(obj: Any) -> tuple[LazyObject, LazyObject]:
    if len(_lazy._STRINGS) > _lazy._STRINGS_MAX // 2:  # (not emptied between the two)
        _lazy._STRINGS.clear()
    built = _lazy.SPEEDUPS.from_shaped(_shaped(obj).object)
    _lazy._use_speedups(None)
    try:
        expected = LazyObject._from_shaped(_shaped(obj).object)
    finally:
        _lazy._use_speedups(_lazy.SPEEDUPS)
    return built, expected


keys = st.text(max_size=40) | st.text(min_size=60, max_size=80)  # msgspec's cache, ours
shaped_meta = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=10), "generateName": st.text(max_size=70),
    "namespace": st.text(max_size=70), "uid": st.text(max_size=5),
    "resourceVersion": st.text(max_size=5), "generation": st.integers(0, 2**40),
    "creationTimestamp": st.none() | st.text(max_size=5),
    "deletionTimestamp": st.none() | st.text(max_size=5),
    "deletionGracePeriodSeconds": st.none() | st.integers(0, 100),
    "labels": st.none() | st.dictionaries(keys, st.text(max_size=70)),
    "annotations": st.none() | st.dictionaries(keys, st.text(max_size=70)),
    "ownerReferences": json_values, "finalizers": json_values, "managedFields": json_values,
})


@needs_c
@settings(max_examples=300, deadline=None)
@given(obj=st.fixed_dictionaries({}, optional={
    "kind": st.text(max_size=70), "apiVersion": st.text(max_size=70),
    "metadata": shaped_meta, "spec": json_values, "status": json_values}))
def test_c_builds_what_python_builds(obj: dict[str, Any]) -> None:
    built, expected = both(obj)
    same(built, expected)
    assert built == obj


@needs_c
@pytest.mark.parametrize("value", [None, 0, "s", True, [], {}, [1, {"a": None}]])
def test_c_builds_what_python_builds_for_every_kind_of_value(value: Any) -> None:
    meta = {"name": "n", "labels": None, "annotations": {},
            "ownerReferences": value, "finalizers": value, "managedFields": value}
    built, expected = both({"metadata": meta, "spec": value, "status": value})
    same(built, expected)


@needs_c
@pytest.mark.parametrize("size", [32, 33, 64, 65])
def test_c_shares_what_python_shares_at_the_length_limits(size: int) -> None:
    """Strings up to 64 characters are shared, label and annotation keys from 33 on by us
    (msgspec's key cache below): at the limits, which the generated objects rarely hit."""
    def text(head: str) -> str:
        return head + "-" * (size - 1)

    meta = {"name": text("n"), "generateName": text("g"), "namespace": text("s"),
            "labels": {text("l"): text("v"), "a": text("w")},
            "annotations": {"a": text("x")}}
    built, expected = both({"kind": text("K"), "apiVersion": text("A"), "metadata": meta,
                            "spec": text("p"), "status": text("t")})
    same(built, expected)


@needs_c
def test_no_reference_is_leaked_or_dropped() -> None:
    decoder = EventDecoder()
    line = orjson.dumps({"type": "MODIFIED", "object": POD})
    for _ in range(10):  # the string table and the shared tuples hold their entries
        decoder(line)
    watched = [UNSET, orjson.Fragment, LazyObject, _lazy._SPEC_STATUS, _lazy._scalar,
               *_lazy._Shaped.__struct_fields__, *_lazy._Meta.__struct_fields__,
               _lazy._STRINGS["shop"], _lazy._STRINGS["web"]]
    before = [sys.getrefcount(x) for x in watched]
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            obj = decoder(line)["object"]
            _lazy.leave_gc(obj)
            del obj
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(x) for x in watched] == before
    assert grown < 64 * 1024  # one leaked copy of spec per object would be ~100 KB


@needs_c
def test_errors_propagate_and_leak_nothing() -> None:
    kind = "".join(["Kind", "ForThisTest"])  # one object, made here

    class BadMeta:  # a metadata "struct" without its fields: AttributeError half way
        pass

    class Shaped:
        apiVersion, spec, status = UNSET, UNSET, UNSET

        def __init__(self) -> None:
            self.kind, self.metadata = kind, BadMeta()

    with pytest.raises(AttributeError):
        _lazy.SPEEDUPS.from_shaped(Shaped())  # (puts kind into the string table)
    before = sys.getrefcount(kind)
    for _ in range(100):
        with pytest.raises(AttributeError):
            _lazy.SPEEDUPS.from_shaped(Shaped())
        with pytest.raises(AttributeError):
            _lazy.SPEEDUPS.meta_from(BadMeta())
    assert sys.getrefcount(kind) == before
    assert _lazy._STRINGS[kind] is kind


@needs_c
def test_a_bad_configuration_is_refused_and_the_old_one_kept() -> None:
    args = list(_lazy._configuration())
    with pytest.raises(TypeError, match="_lazy must be a slot"):
        _lazy.SPEEDUPS.configure(type("Plain", (dict,), {"_lazy": None}), *args[1:])
    with pytest.raises(ValueError, match="no metadata field"):
        _lazy.SPEEDUPS.configure(*args[:-1], ("ownerReferences", "finalizers", "nope"))
    built, expected = both(POD)
    same(built, expected)


@needs_c
@pytest.mark.parametrize(("depth", "tracked"), [(150, False), (250, True)])
def test_leave_gc_leaves_containers_nested_over_200_deep_tracked(
    depth: int, tracked: bool,
) -> None:
    obj = EventDecoder()(orjson.dumps({"type": "ADDED", "object": POD}))["object"]
    deep: list[Any] = []
    for _ in range(depth):  # as a transform might have decoded it
        deep = [deep]
    obj["deep"] = deep
    _lazy.leave_gc(obj)
    assert gc.is_tracked(obj) is tracked
    assert not gc.is_tracked(dict.__getitem__(obj, "metadata"))



class Handle:
    """Something a transform stored that the collector tracks (not JSON)."""


def put(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        dict.__setitem__(container, key, value)
    else:
        container.append(value)


def transformed(seed: int) -> tuple[LazyObject, list[Any]]:
    """A decoded object as a transform may leave it, and its containers: dicts, lists and
    lazy objects nested in each other, some shared, some in a cycle, some holding a value
    that is not JSON, some untracked already, one chain up to 190 deep."""
    rng = random.Random(seed)
    root = LazyObject._new()
    nodes: list[Any] = [root]
    makers: list[Callable[[], Any]] = [dict, list, LazyObject._new]
    for _ in range(rng.randint(1, 40)):
        parent, roll = rng.choice(nodes), rng.random()
        if roll < 0.5:
            value = rng.choice(makers)()
            nodes.append(value)
        elif roll < 0.6:
            value = rng.choice(nodes)  # shared, or a cycle
        elif roll < 0.7:
            value = rng.choice([Handle, set])()
        else:
            value = rng.choice([1, "s", None, 2.5, orjson.Fragment(b"[1]")])
        put(parent, f"k{len(parent)}", value)
    for node in nodes:
        if rng.random() < 0.1:
            _lazy._py_untrack(node)
    if rng.random() < 0.2:
        parent = rng.choice(nodes)
        for _ in range(rng.randint(100, 150)):
            nodes.append(child := rng.choice([dict, list])())
            put(parent, "next", child)
            parent = child
    return root, nodes


@needs_c
def test_leave_gc_untracks_what_the_python_walk_untracks() -> None:
    seen = set()
    for seed in range(500):
        tracked = []
        for module in (_lazy.SPEEDUPS, None):
            _lazy._use_speedups(module)
            try:
                root, nodes = transformed(seed)
                _lazy.leave_gc(root)
            finally:
                _lazy._use_speedups(_lazy.SPEEDUPS)
            tracked.append([gc.is_tracked(node) for node in nodes])
        assert tracked[0] == tracked[1], seed
        seen.update(tracked[0])
    assert seen == {True, False}
