"""Demo data for the work permits service in ``hub dev``: clients, delegations, a demo worker.

- The work permits service calls the hub's gateway with client credentials of its own (the
  payments API's scopes, for the renewal fee).
- "Demo permits suite", a vendor application with the ``permits.manage`` scope, to which Demo
  Trading Co (its owner Aisha) delegates ``permits.manage``; so does it to its HR officer Maria.
- The service itself seeds (``PERMITS_DEMO``) what it would otherwise learn from the visa and
  contracts services' events: an issued work visa ``W900000001`` of Demo Trading Co and an
  active contract ``ct-demo-1`` with the demo worker, Maria (``2000000001``, a resident), so
  a permit can be requested at once and she sees it signed in.

Secrets are made once and kept in ``HUB_DATA_DIR/demo-permits.json`` (mode 0600).
The hub never imports the service: ``hub dev`` starts it as a process with ``PERMITS_*``
variables (:func:`permit_service_environment`).
"""

from __future__ import annotations

from typing import Final

from hub.cli.demo import DEMO_CR_NUMBER
from hub.cli.demo_services import demo_data, service_environment
from hub.settings import Settings

__all__ = [
    "DEMO_WORKER",
    "PERMIT_SERVICE_SCOPES",
    "ensure_demo_permits",
    "permit_service_environment",
]

_FILE: Final = "demo-permits.json"
_SCOPE: Final = "permits.manage"
_OWNER: Final = "1000000001"
#: The demo worker (Maria, a resident; also the demo HR officer).
DEMO_WORKER: Final = "2000000001"
#: What the work permits service's own client may do at the hub.
PERMIT_SERVICE_SCOPES: Final = ("payments.write", "payments.read")


async def ensure_demo_permits(settings: Settings) -> dict[str, str]:
    """The service's and the demo vendor's client credentials (made once), and delegations."""
    async with demo_data(settings, _FILE) as demo:
        for key, name, owner, scopes in (
            ("", "Work permits service", "permits", PERMIT_SERVICE_SCOPES),
            ("vendor_", "Demo permits suite", "demo-permits-suite", (_SCOPE,)),
        ):
            await demo.client(name=name, owner=owner, scopes=scopes, key=key)
        credentials, people = demo.credentials, demo.people
        (establishment,) = await people.establishments.list(cr_number=DEMO_CR_NUMBER)
        credentials["establishment_id"] = establishment.id
        owner_person = await people.persons.by_identifier(_OWNER)
        worker = await people.persons.by_identifier(DEMO_WORKER)
        if owner_person is not None and worker is not None:
            credentials["worker_id"] = worker.id
            for client_id, person in ((credentials["vendor_client_id"], None), (None, worker.id)):
                await demo.delegate(
                    establishment.id,
                    grantor=owner_person.id,
                    scopes=[_SCOPE],
                    grantee_client=client_id,
                    grantee_person=person,
                    reason="demo data: work permits",
                )
    return demo.credentials


def permit_service_environment(
    settings: Settings, credentials: dict[str, str], *, port: int, hub_url: str
) -> dict[str, str]:
    """The ``PERMITS_*`` variables of the work permits service next to this hub."""
    client = (credentials["client_id"], credentials["client_secret"])
    variables = service_environment(
        "PERMITS_", settings, port=port, hub_url=hub_url, client=client, demo=True
    )
    variables["PERMITS_DEMO_ESTABLISHMENT"] = credentials["establishment_id"]
    variables["PERMITS_DEMO_WORKER"] = credentials.get("worker_id", "")
    return variables
