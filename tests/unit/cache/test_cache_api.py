"""The public API of pycontroller.cache is exactly its ``__all__`` (house style §5.2)."""

from __future__ import annotations

import inspect

from pycontroller import cache


def test_all_lists_exactly_the_public_attributes() -> None:
    public = {name for name in vars(cache) if not name.startswith("_")}
    public -= {name for name, value in vars(cache).items() if inspect.ismodule(value)}
    public.discard("annotations")  # from __future__
    assert sorted(public) == sorted(cache.__all__)


def test_reexported_classes_and_functions_report_the_public_module() -> None:
    for name in cache.__all__:
        value = getattr(cache, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == "pycontroller.cache", name


def test_every_public_name_has_a_docstring() -> None:
    for name in cache.__all__:
        value = getattr(cache, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
