"""The notification service's only way out: the hub's gateway, with the service's own client.

SMS go to ``POST /api/notify/v1/sms``, e-mails to ``POST /api/notify/v1/email``: adapter
routes of the hub (the SMS and e-mail provider adapters, their resilience path and
contracts), open only to a client holding ``notifications.send``. The service holds a
client-credentials token, fetched from ``/oauth2/token`` and renewed before it expires. The
delivery's id is the ``reference``: the provider takes a repeat as the same message, so a send
is retried without fear of sending twice. The token, its renewal and the translation of the
hub's silence are the kit's (:mod:`hub.servicekit.gateway`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.errors import HubUnavailable, InvalidRequest
from hub.servicekit.gateway import Gateway

__all__ = ["HubClient", "Sent"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """What the provider answered through the hub: its id for the message, and its status."""

    provider_id: str
    status: str


class HubClient(Gateway):
    """Calls the hub's gateway as the notification service's OAuth client."""

    service = "notification"

    async def _send_message(self, path: str, body: dict[str, Any] | None) -> Sent:
        answer = await (
            self.call("GET", path) if body is None else self.call("POST", path, json=body)
        )
        if answer.status == 200:
            data = answer.body
            return Sent(provider_id=str(data["id"]), status=str(data["status"]))
        if answer.status in {400, 409, 422}:
            # The provider (or the hub) refuses this message as it is: another try is futile.
            raise InvalidRequest(f"the message was refused: {answer.problem}")
        raise HubUnavailable(f"the message could not be sent: {answer.problem}")

    async def send_sms(self, *, to: str, text: str, reference: str) -> Sent:
        """Send one SMS through the hub's ``sms-provider`` adapter."""
        return await self._send_message(
            "/api/notify/v1/sms", {"to": to, "text": text, "reference": reference}
        )

    async def status(self, channel: str, provider_id: str) -> Sent:
        """A sent message's status at its provider (when its receipts are overdue)."""
        return await self._send_message(f"/api/notify/v1/{channel}/{provider_id}", None)

    async def send_email(
        self, *, to: str, subject: str, text: str, html: str, language: str, reference: str
    ) -> Sent:
        """Send one e-mail through the hub's ``email-provider`` adapter."""
        return await self._send_message(
            "/api/notify/v1/email",
            {
                "to": to,
                "subject": subject,
                "text": text,
                "html": html,
                "language": language,
                "reference": reference,
            },
        )
