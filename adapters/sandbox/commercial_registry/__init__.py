"""A sandbox of the commercial registry: establishments by commercial registration number.

Deterministic synthetic establishments from a seed plus the hub demo's Demo Trading Co
(``4030000001``), a suspended (``4030000002``) and a struck-off one (``4030000003``); latency,
quota, API key and faults as every sandbox registrar. Run it with
``python -m adapters.sandbox.commercial_registry --port 9402``.
"""

from __future__ import annotations

from adapters.sandbox.commercial_registry.app import create_app
from adapters.sandbox.commercial_registry.data import DEMO_ESTABLISHMENTS, EstablishmentRegister

__all__ = ["DEMO_ESTABLISHMENTS", "EstablishmentRegister", "create_app"]
