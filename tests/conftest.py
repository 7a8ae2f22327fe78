"""Shared fixtures: back-end URLs and processes live in the plugin modules named here."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures_db",
    "tests.fixtures_services",
    "tests.fixtures_upstreams",
]
