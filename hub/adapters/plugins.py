"""Adapter plugins: found by name in the ``hub.adapters`` entry-point group of installed packages.

Our own adapters are declared in the hub's ``pyproject.toml``; a third party ships one as its own
distribution with an entry point in the same group, and it is found the same way, with no change
to the hub. A plugin is loaded once per process and checked for the shape of an
:class:`~adapters.base.AdapterFactory` (callable, with an ``operations`` mapping).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from adapters.base import ENTRY_POINT_GROUP, AdapterFactory, Operation
from hub.errors import AdapterUnavailable

__all__ = ["PluginError", "available_plugins", "clear_plugin_cache", "load_plugin"]


class PluginError(AdapterUnavailable):
    """A plugin is not installed, cannot be imported, or is not an adapter factory."""


def available_plugins() -> dict[str, EntryPoint]:
    """Every installed plugin by entry-point name (the first one wins on a duplicate name)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return found


@functools.cache
def load_plugin(name: str) -> AdapterFactory:
    """The adapter factory a plugin names; :class:`PluginError` saying why when it cannot be."""
    point = available_plugins().get(name)
    if point is None:
        names = ", ".join(sorted(available_plugins())) or "none"
        raise PluginError(
            f"no adapter plugin {name!r} in the {ENTRY_POINT_GROUP} entry-point group"
            f" (installed: {names})"
        )
    try:
        factory: Any = point.load()
    except Exception as exc:  # any import failure of foreign code: report it, do not crash
        raise PluginError(
            f"adapter plugin {name!r} ({point.value}) cannot be loaded: {exc}"
        ) from exc
    operations = getattr(factory, "operations", None)
    if not callable(factory) or not isinstance(operations, Mapping):
        raise PluginError(
            f"adapter plugin {name!r} ({point.value}) is not an adapter factory:"
            " it needs an 'operations' mapping and must be callable"
        )
    for key, operation in operations.items():
        if not isinstance(operation, Operation) or operation.name != key:
            raise PluginError(
                f"adapter plugin {name!r}: operations[{key!r}] is not an Operation named {key!r}"
            )
    return cast(AdapterFactory, factory)


def clear_plugin_cache() -> None:
    """Forget loaded plugins (a test installs a new distribution at run time)."""
    load_plugin.cache_clear()
