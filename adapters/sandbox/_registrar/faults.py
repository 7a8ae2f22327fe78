"""Injected faults of a sandbox registrar, set through ``POST /_sandbox/faults``.

Per request, in this order: ``latency_ms`` is added to every answer; with ``hang`` the request
is held ``hang_seconds`` (a hung system: clients hit their timeouts); ``slow_ms`` delays it
further; with probability ``error_rate`` it answers ``error_status`` (a failure); with
``malformed_rate`` the body is cut short (not JSON); with ``out_of_contract_rate`` a well-formed
record breaks the system's own contract (a field of the wrong type, a required one missing).
The random draws come from a generator seeded at start, so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from adapters.sandbox._control.faults import FaultError, Faults

__all__ = ["Action", "FaultError", "RegistrarFaults"]

Action = Literal["ok", "error", "malformed", "out_of_contract"]


@dataclass(slots=True, kw_only=True)
class RegistrarFaults(Faults):
    """The faults in force; every field can be changed at run time."""

    RATES: ClassVar[frozenset[str]] = frozenset(
        {"error_rate", "malformed_rate", "out_of_contract_rate"}
    )
    ACTIONS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("error_rate", "error"),
        ("malformed_rate", "malformed"),
        ("out_of_contract_rate", "out_of_contract"),
    )

    malformed_rate: float = 0.0
    out_of_contract_rate: float = 0.0
