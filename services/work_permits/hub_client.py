"""The work permits service's only way out: the hub's gateway, with the service's own credentials.

The service calls nobody else: it learns about visas, contracts, occupations and compliance
bands from events. The one call it makes is the renewal fee, through the hub's payments API
(:meth:`~hub.servicekit.gateway.Gateway.create_payment`), as a client-credentials client of the
hub (:mod:`hub.servicekit.gateway`).
"""

from __future__ import annotations

from hub.servicekit.gateway import Gateway, Payment

__all__ = ["HubClient", "Payment"]


class HubClient(Gateway):
    """Calls the hub's gateway as the work permits service's OAuth client."""

    service = "work permits"
