"""Demo data for the visa service in ``hub dev``: clients, a delegation and an agency officer.

- The visa service calls the hub's gateway with client credentials of its own (scope
  ``registry.visa-eligibility`` for the registrar reads, and the payments API's).
- "Demo HR suite", a vendor application with the ``visas.apply`` scope, to which Demo Trading
  Co (its owner Aisha) delegates ``visas.apply``; so does it to its HR officer Maria.
- Omar (``1000000002``) also holds the ``agency_officer`` role, so the review queue can be
  walked.

Secrets are made once and kept in ``HUB_DATA_DIR/demo-visas.json`` (mode 0600).
The hub never imports the service: ``hub dev`` starts it as a process with ``VISAS_*``
variables (:func:`visa_service_environment`).
"""

from __future__ import annotations

from typing import Final

from hub.cli.demo import DEMO_CR_NUMBER
from hub.cli.demo_services import DemoData, demo_data, service_environment
from hub.settings import Settings

__all__ = ["DEMO_OFFICER", "VISA_SERVICE_SCOPES", "ensure_demo_visas", "visa_service_environment"]

_FILE: Final = "demo-visas.json"
_SCOPE: Final = "visas.apply"
_OWNER, _HR_OFFICER = "1000000001", "2000000001"
#: The demo agency officer (Omar, who is also the platform admin).
DEMO_OFFICER: Final = "1000000002"
_AGENCY: Final = "immigration"
#: What the visa service's own client may do at the hub.
VISA_SERVICE_SCOPES: Final = (
    "registry.visa-eligibility",
    "payments.write",
    "payments.read",
    "payments.refund",
)


async def ensure_demo_visas(settings: Settings) -> dict[str, str]:
    """The visa service's client credentials (made once) and the demo officer's role."""
    async with demo_data(settings, _FILE) as demo:
        people = demo.people
        officer = await people.persons.by_identifier(DEMO_OFFICER)
        if officer is not None:
            held = await people.staff.list(person_id=officer.id, active_only=True)
            if not any(role.role == "agency_officer" for role in held):
                await people.staff.grant(officer.id, "agency_officer", agency=_AGENCY)
        for key, name, owner, scopes in (
            ("", "Visa service", "visas", VISA_SERVICE_SCOPES),
            ("vendor_", "Demo HR suite", "demo-hr-suite", ("visas.apply",)),
        ):
            await demo.client(name=name, owner=owner, scopes=scopes, key=key)
        await _delegate(demo, demo.credentials["vendor_client_id"])
    return demo.credentials


async def _delegate(demo: DemoData, vendor_client_id: str) -> None:
    people = demo.people
    (establishment,) = await people.establishments.list(cr_number=DEMO_CR_NUMBER)
    owner = await people.persons.by_identifier(_OWNER)
    officer = await people.persons.by_identifier(_HR_OFFICER)
    if owner is None or officer is None:
        return
    for client, person in ((vendor_client_id, None), (None, officer.id)):
        await demo.delegate(
            establishment.id,
            grantor=owner.id,
            scopes=[_SCOPE],
            grantee_client=client,
            grantee_person=person,
            reason="demo data: visa applications",
        )


def visa_service_environment(
    settings: Settings, credentials: dict[str, str], *, port: int, hub_url: str
) -> dict[str, str]:
    """The ``VISAS_*`` variables of the visa service next to this hub (its own database)."""
    client = (credentials["client_id"], credentials["client_secret"])
    return service_environment(
        "VISAS_", settings, port=port, hub_url=hub_url, client=client, demo=True
    )
