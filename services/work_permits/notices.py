"""The events of a permit's step: its domain event (``permit.*``) and its notification requests.

The domain events are ``permit.issued``, ``.renewed``, ``.transferred``, ``.cancelled``,
``.expiring`` and ``.expired`` (payload ``permit_id``, ``person_id``, ``establishment_id``,
``occupation``, ``expires_on`` and the step's details). Every step, those and the others
(``renewal_pending``, ``renewal_failed``, ``transfer_pending``, ``transfer_declined``), asks
for two notifications in the visa service's format, without ``channels`` (the person's
preference decides): one to the worker, one to whoever acts for the establishment.
"""

from __future__ import annotations

from typing import Any, Final

from services.work_permits.domain import Actor

__all__ = ["DOMAIN_EVENTS", "REFERENCE_PREFIX", "message", "step_events"]

REFERENCE_PREFIX: Final = "work-permit:"
#: Domain events the service publishes (the other steps publish notification requests only).
DOMAIN_EVENTS: Final = frozenset(
    {"issued", "renewed", "transferred", "cancelled", "expiring", "expired"}
)


def step_events(
    row: dict[str, Any],
    previous: str | None,
    step: str,
    actor: Actor,
    *,
    number: int | str,
    at: str,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The step's domain event (when it has one) and its notification requests."""
    expires_on = row["expires_on"].isoformat()
    events: list[tuple[str, dict[str, Any]]] = []
    if step in DOMAIN_EVENTS:
        events.append(
            (
                f"permit.{step}",
                {
                    "permit_id": row["id"],
                    "person_id": row["person_id"],
                    "establishment_id": row["establishment_id"],
                    "occupation": row["occupation"],
                    "expires_on": expires_on,
                    "state": row["state"],
                    "previous": previous,
                    "contract_id": row["contract_id"],
                    "visa_number": row["visa_number"],
                    "actor": {"kind": actor.kind, "id": actor.id},
                    "reason": reason,
                    "at": at,
                    **(extra or {}),
                },
            )
        )
    data = {
        "permit_id": row["id"],
        "state": row["state"],
        "establishment_id": row["establishment_id"],
        "expires_on": expires_on,
    }
    recipients: list[tuple[str, dict[str, Any]]] = [
        ("worker", {"kind": "person", "id": row["person_id"]}),
        (
            "establishment",
            {
                "kind": row["requested_by_kind"],
                "id": row["requested_by"],
                "client_id": row["requested_by_client"],
                "establishment_id": row["establishment_id"],
            },
        ),
    ]
    for who, recipient in recipients:
        events.append(
            (
                "notification.requested",
                {
                    "notification_id": f"{row['id']}.{number}.{step}.{who}",
                    "recipient": recipient,
                    "template": f"permit.{step}",
                    "subject": f"Work permit {row['id']}: {step.replace('_', ' ')}",
                    "body": message(row, step, reason),
                    "data": data,
                    "reference": REFERENCE_PREFIX + row["id"],
                },
            )
        )
    return events


def message(row: dict[str, Any], step: str, reason: str | None) -> str:
    who = row.get("worker_name") or row["person_id"]
    until = row["expires_on"].isoformat()
    texts = {
        "issued": f"A work permit was issued for {who}, valid until {until}.",
        "renewal_pending": "The renewal of the work permit waits for its fee.",
        "renewed": f"The work permit of {who} was renewed until {until}.",
        "renewal_failed": f"The renewal fee was not paid ({reason}); the permit is unchanged.",
        "transfer_pending": "A transfer of the work permit to a new establishment waits for "
        "the consent of the worker and both establishments.",
        "transferred": f"The work permit of {who} now belongs to {row['establishment_id']}.",
        "transfer_declined": f"The transfer of the work permit was {reason or 'declined'}.",
        "cancelled": f"The work permit was cancelled: {reason or 'no reason given'}.",
        "expiring": f"The work permit of {who} expires on {until}; renew it in time.",
        "expired": f"The work permit of {who} has expired.",
    }
    return texts.get(step, step)
