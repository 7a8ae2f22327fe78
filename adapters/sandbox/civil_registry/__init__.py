"""A sandbox of the civil registry: persons by national ID or resident ID, on loopback.

Deterministic synthetic people from a seed (``--seed``, ``--population``) plus the demo people
the hub's demo knows; configurable latency, a quota of its own (``--quota``), an API key
(``--api-key``), and faults injected through ``POST /_sandbox/faults``. Run it with
``python -m adapters.sandbox.civil_registry --port 9401``.
"""

from __future__ import annotations

from adapters.sandbox.civil_registry.app import create_app
from adapters.sandbox.civil_registry.data import DECEASED_DEMO, PersonRegister

__all__ = ["DECEASED_DEMO", "PersonRegister", "create_app"]
