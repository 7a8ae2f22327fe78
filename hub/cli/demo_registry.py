"""Demo data for the occupations, certificates and compliance services in ``hub dev``.

- The certificates service calls the hub with a client of its own (scope
  ``registry.qualification-verification``), the compliance service with another
  (``registry.compliance-monitoring``); the occupations service reads no registrar.
- Demo Trading Co (its owner Aisha) delegates ``occupations.manage``, ``certificates.read`` and
  ``compliance.read`` to its HR officer Maria; Omar is the agency officer (demo_visas).
- The compliance service is told Demo Trading Co's CR number, so its band is computed from the
  commercial registry's sector as soon as contract events come.

Secrets are made once and kept in ``HUB_DATA_DIR/demo-registry.json`` (mode 0600). The hub
never imports the services: ``hub dev`` starts them as processes with their own variables.
"""

from __future__ import annotations

from typing import Final

from hub.cli.demo import DEMO_CR_NUMBER
from hub.cli.demo_services import demo_data, service_environment
from hub.settings import Settings

__all__ = ["REGISTRY_SERVICES", "ensure_demo_registry", "registry_service_environments"]

_FILE: Final = "demo-registry.json"
_OWNER, _HR_OFFICER = "1000000001", "2000000001"
_HR_SCOPES: Final = ("occupations.manage", "certificates.read", "compliance.read")
#: service -> (module, environment prefix, the scopes of its own client at the hub)
REGISTRY_SERVICES: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "occupations": ("services.occupations", "OCCUPATIONS_", ()),
    "certificates": (
        "services.certificates",
        "CERTIFICATES_",
        ("registry.qualification-verification",),
    ),
    "compliance": ("services.compliance", "COMPLIANCE_", ("registry.compliance-monitoring",)),
}


async def ensure_demo_registry(settings: Settings) -> dict[str, str]:
    """The services' client credentials (made once), the HR delegations; the establishment id."""
    async with demo_data(settings, _FILE) as demo:
        for name, (_, _, scopes) in REGISTRY_SERVICES.items():
            if scopes:
                await demo.client(
                    name=f"{name.capitalize()} service", owner=name, scopes=scopes, key=f"{name}_"
                )
        people = demo.people
        (establishment,) = await people.establishments.list(cr_number=DEMO_CR_NUMBER)
        demo.credentials["establishment_id"] = establishment.id
        owner = await people.persons.by_identifier(_OWNER)
        officer = await people.persons.by_identifier(_HR_OFFICER)
        if owner is not None and officer is not None:
            await demo.delegate(
                establishment.id,
                grantor=owner.id,
                scopes=_HR_SCOPES,
                grantee_person=officer.id,
                reason="demo data: occupations, certificates and compliance",
            )
    return demo.credentials


def registry_service_environments(
    settings: Settings, credentials: dict[str, str], *, ports: dict[str, int], hub_url: str
) -> dict[str, dict[str, str]]:
    """Each service's variables next to this hub (its own SQLite file, the hub's bus)."""
    environments = {
        name: service_environment(
            prefix,
            settings,
            port=ports[name],
            hub_url=hub_url,
            client=(credentials[f"{name}_client_id"], credentials[f"{name}_client_secret"])
            if scopes
            else None,
        )
        for name, (_, prefix, scopes) in REGISTRY_SERVICES.items()
    }
    environments["compliance"]["COMPLIANCE_DEMO_REGISTRATIONS"] = (
        f"{credentials['establishment_id']}={DEMO_CR_NUMBER}"
    )
    return environments
