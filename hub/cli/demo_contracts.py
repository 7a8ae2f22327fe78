"""Demo data for the contracts service in ``hub dev``: its client and an HR delegation.

- The contracts service calls the hub with client credentials of its own: scope
  ``registry.employment-contract`` for the commercial-registry check, ``signatures.sign`` for
  the hub's signatures. Its owner is ``contracts``, the upstream id its internal tokens are
  minted for (the signing endpoint checks that the signer's token was minted for it).
- Demo Trading Co (its owner Aisha) delegates ``contracts.manage`` to its HR officer Maria.
- Omar (``1000000002``) is the demo employee: his person id is printed for the draft body.

Secrets are made once and kept in ``HUB_DATA_DIR/demo-contracts.json`` (mode 0600).
The hub never imports the service: ``hub dev`` starts it as a process with ``CONTRACTS_*``
variables (:func:`contracts_service_environment`).
"""

from __future__ import annotations

from typing import Final

from hub.cli.demo import DEMO_CR_NUMBER
from hub.cli.demo_services import demo_data, service_environment
from hub.settings import Settings

__all__ = [
    "CONTRACTS_SERVICE_SCOPES",
    "DEMO_EMPLOYEE",
    "contracts_service_environment",
    "ensure_demo_contracts",
]

_FILE: Final = "demo-contracts.json"
_SCOPE: Final = "contracts.manage"
_OWNER, _HR_OFFICER = "1000000001", "2000000001"
#: The demo employee (Omar, a citizen).
DEMO_EMPLOYEE: Final = "1000000002"
#: What the contracts service's own client may do at the hub.
CONTRACTS_SERVICE_SCOPES: Final = ("registry.employment-contract", "signatures.sign")


async def ensure_demo_contracts(settings: Settings) -> dict[str, str]:
    """The contracts service's client credentials (made once), the HR delegation, ids."""
    async with demo_data(settings, _FILE) as demo:
        await demo.client(
            name="Contracts service", owner="contracts", scopes=CONTRACTS_SERVICE_SCOPES
        )
        people = demo.people
        (establishment,) = await people.establishments.list(cr_number=DEMO_CR_NUMBER)
        demo.credentials["establishment_id"] = establishment.id
        owner = await people.persons.by_identifier(_OWNER)
        officer = await people.persons.by_identifier(_HR_OFFICER)
        employee = await people.persons.by_identifier(DEMO_EMPLOYEE)
        if employee is not None:
            demo.credentials["employee_id"] = employee.id
        if owner is not None and officer is not None:
            await demo.delegate(
                establishment.id,
                grantor=owner.id,
                scopes=[_SCOPE],
                grantee_person=officer.id,
                reason="demo data: employment contracts",
            )
    return demo.credentials


def contracts_service_environment(
    settings: Settings, credentials: dict[str, str], *, port: int, hub_url: str
) -> dict[str, str]:
    """The ``CONTRACTS_*`` variables of the contracts service next to this hub."""
    client = (credentials["client_id"], credentials["client_secret"])
    return service_environment(
        "CONTRACTS_", settings, port=port, hub_url=hub_url, client=client, demo=True
    )
