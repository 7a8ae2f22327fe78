"""Shared fixtures: back-end URLs and processes live in the plugin modules named here."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures_db",
    "tests.fixtures_services",
    "tests.fixtures_upstreams",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end modules first, each kept whole and in its own order.

    They are the longest (they start whole fleets of processes); with two xdist workers taking a
    module at a time, starting them first keeps one long module from running alone at the end.
    """
    items.sort(key=lambda item: not item.path.name.endswith("_e2e.py"))
