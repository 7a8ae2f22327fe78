"""The messages of each contract step: its domain event and who hears of it.

Pure functions of the contract's row. Domain events carry issue 7's payload (``contract_id``,
``establishment_id``, ``employee {id, nationality, citizen}``, ``occupation``, ``salary``,
``start_date``, ``end_date``, ``state``, ``at``, ``visa_number`` for a foreign worker, and
``cr_number``, the establishment's CR number, which the compliance service reads);
``notification.requested`` is the visa service's format without ``channels`` (the person's
preference decides in the notification service), with a stable ``notification_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from services.contracts.domain import PARTIES, Party

__all__ = [
    "REFERENCE_PREFIX",
    "Message",
    "event_payload",
    "notice",
    "recipient",
    "transition_events",
]

REFERENCE_PREFIX: Final = "contract:"
#: (event id, type, payload) of one event a step enqueues
Message = tuple[str, str, dict[str, Any]]


def event_payload(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The payload every ``contract.*`` event carries (issue 7's list)."""
    document = row["document"]
    payload: dict[str, Any] = {
        "contract_id": row["id"],
        "establishment_id": row["establishment_id"],
        "cr_number": row["cr_number"],
        "employee": {
            "id": row["employee_id"],
            "nationality": row["nationality"],
            "citizen": bool(row["citizen"]),
        },
        "occupation": document["occupation"]["code"],
        "salary": document["salary"]["monthly"],
        "start_date": document["start_date"],
        "end_date": document["end_date"],
        "state": row["state"],
        "version": document["version"],
        "at": now.isoformat(),
    }
    if not row["citizen"]:
        payload["visa_number"] = row["visa_number"]
    return payload


def recipient(row: dict[str, Any], party: Party) -> dict[str, Any]:
    if party == "employee":
        return {"kind": "person", "id": row["employee_id"]}
    recipient: dict[str, Any] = {
        "kind": row["drafter_kind"],
        "id": row["drafter_id"],
        "client_id": row["drafter_client"],
        "establishment_id": row["establishment_id"],
    }
    if row["contact_email"]:
        recipient["email"] = row["contact_email"]
    return recipient


def notice(
    row: dict[str, Any],
    stem: str,
    template: str,
    party: Party,
    body: str,
    *,
    amendment_id: str | None = None,
) -> Message:
    """A ``notification.requested`` for one party (the visa format, no ``channels``)."""
    notification_id = f"{stem}.{party}"
    data: dict[str, Any] = {"contract_id": row["id"], "state": row["state"]}
    if amendment_id is not None:
        data["amendment_id"] = amendment_id
    return (
        f"{notification_id}.notification",
        "notification.requested",
        {
            "notification_id": notification_id,
            "recipient": recipient(row, party),
            "template": template,
            "subject": f"Employment contract {row['id']}: "
            + template.removeprefix("contract.").replace(".", " ").replace("_", " "),
            "body": body,
            "data": data,
            "reference": REFERENCE_PREFIX + row["id"],
        },
    )


def transition_events(
    row: dict[str, Any],
    *,
    previous: str,
    state: str,
    number: int,
    now: datetime,
    reason: str | None,
) -> list[Message]:
    """The domain event of a transition (issue 7's names) and who hears of it."""
    cid = row["id"]
    events: list[Message] = []
    domain = {
        "accepted": "contract.accepted",
        "active": "contract.activated",
        "terminated": "contract.terminated",
        "expired": "contract.expired",
    }.get(state)
    if domain is not None:
        payload = event_payload(row, now)
        if reason is not None:
            payload["reason"] = reason
        events.append((f"{cid}.{number}.{domain}", domain, payload))
    texts: dict[str, tuple[tuple[Party, ...], str]] = {
        "offered": (("employee",), f"You are offered employment contract {cid}: review it."),
        "accepted": (("employer",), f"The employee accepted contract {cid}; sign it."),
        "declined": (("employer",), f"The employee declined contract {cid}."),
        "withdrawn": (
            ("employee",) if previous != "draft" else (),
            f"The employer withdrew contract {cid}.",
        ),
        "active": (PARTIES, f"Contract {cid} is signed by both parties and active."),
        "terminated": (PARTIES, f"Contract {cid} was terminated: {reason}."),
        "expired": (PARTIES, f"Contract {cid} has expired."),
    }
    parties, text = texts.get(state, ((), ""))
    template = "contract.activated" if state == "active" else f"contract.{state}"
    events.extend(notice(row, f"{cid}.{number}", template, party, text) for party in parties)
    return events
