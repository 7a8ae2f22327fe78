"""The SMS provider adapter: send a text message, look one up.

Plugin ``sms_provider``; contract ``contracts/adapters/sms-provider``:

- ``send_sms`` (``POST /v1/messages``, body ``{to, text, reference}``): a :class:`Sent`. The
  ``reference`` (the hub's message id) is the ``Idempotency-Key``, so the call is retried
  safely: the provider answers a repeat with the same message;
- ``get_sms`` (``GET /v1/messages/{id}``): the message and its status, or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from adapters.base import CallContext, Operation
from adapters.notify._base import (
    REFERENCE,
    MessageLookup,
    MessageStatus,
    MessagingAdapter,
    Sent,
    lookup_operation,
    only,
    send_operation,
    text_field,
)

__all__ = ["Sms", "SmsProvider", "SmsRequest"]

#: E.164: a plus, then up to 15 digits.
PHONE: Final = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsRequest:
    """One text message to ``to`` (E.164), keyed by the hub's ``reference``."""

    to: str
    text: str
    reference: str

    @classmethod
    def of(cls, _params: Mapping[str, str], body: Mapping[str, Any]) -> SmsRequest:
        only(body, "to", "text", "reference")
        return cls(
            to=text_field(body, "to", limit=16, pattern=PHONE),
            text=text_field(body, "text", limit=1600),
            reference=text_field(body, "reference", limit=128, pattern=REFERENCE),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Sms:
    """A text message as the provider holds it."""

    id: str
    to: str
    reference: str
    status: MessageStatus
    segments: int
    accepted_at: str


class SmsProvider(MessagingAdapter):
    """The ``sms_provider`` plugin."""

    system: ClassVar[str] = "SMS provider"
    path: ClassVar[str] = "/v1/messages"

    async def send_sms(self, request: SmsRequest, context: CallContext) -> Sent:
        body = {"to": request.to, "text": request.text, "reference": request.reference}
        return await self._send(body, SEND_SMS, context)

    async def get_sms(self, query: MessageLookup, context: CallContext) -> Sms | None:
        return await self._lookup(query, GET_SMS, context, Sms)


SEND_SMS: Final[Operation[SmsRequest, Sent]] = send_operation(
    "send_sms",
    SmsRequest.of,
    SmsProvider.send_sms,
    "Send one SMS (the reference is the Idempotency-Key).",
)
GET_SMS: Final[Operation[MessageLookup, Sms]] = lookup_operation(
    "get_sms", SmsProvider.get_sms, Sms, "One SMS and its delivery status."
)
SmsProvider.operations = {SEND_SMS.name: SEND_SMS, GET_SMS.name: GET_SMS}
