"""The e-mail provider adapter: send an e-mail (text and HTML), look one up.

Plugin ``email_provider``; contract ``contracts/adapters/email-provider``:

- ``send_email`` (``POST /v1/emails``, body ``{to, subject, text, html?, language?,
  reference}``): a :class:`Sent`; the ``reference`` is the ``Idempotency-Key``;
- ``get_email`` (``GET /v1/emails/{id}``): the e-mail and its status, or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from adapters.base import CallContext, InvalidRequest, Operation
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

__all__ = ["Email", "EmailProvider", "EmailRequest"]

ADDRESS: Final = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
_LANGUAGE: Final = re.compile(r"[a-z]{2}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailRequest:
    """One e-mail to ``to``, keyed by the hub's ``reference``."""

    to: str
    subject: str
    text: str
    reference: str
    html: str | None = None
    language: str | None = None

    @classmethod
    def of(cls, _params: Mapping[str, str], body: Mapping[str, Any]) -> EmailRequest:
        only(body, "to", "subject", "text", "html", "language", "reference")
        html = body.get("html")
        if html is not None and (not isinstance(html, str) or len(html) > 100_000):
            raise InvalidRequest("html: a string of at most 100000 characters")
        language = body.get("language")
        if language is not None and (
            not isinstance(language, str) or _LANGUAGE.fullmatch(language) is None
        ):
            raise InvalidRequest("language: a two-letter code")
        return cls(
            to=text_field(body, "to", limit=320, pattern=ADDRESS),
            subject=text_field(body, "subject", limit=300),
            text=text_field(body, "text", limit=20_000),
            reference=text_field(body, "reference", limit=128, pattern=REFERENCE),
            html=html,
            language=language,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Email:
    """An e-mail as the provider holds it."""

    id: str
    to: str
    reference: str
    status: MessageStatus
    accepted_at: str


class EmailProvider(MessagingAdapter):
    """The ``email_provider`` plugin."""

    system: ClassVar[str] = "e-mail provider"
    path: ClassVar[str] = "/v1/emails"

    async def send_email(self, request: EmailRequest, context: CallContext) -> Sent:
        body: dict[str, Any] = {
            "to": request.to,
            "subject": request.subject,
            "text": request.text,
            "reference": request.reference,
        }
        if request.html is not None:
            body["html"] = request.html
        if request.language is not None:
            body["language"] = request.language
        return await self._send(body, SEND_EMAIL, context)

    async def get_email(self, query: MessageLookup, context: CallContext) -> Email | None:
        return await self._lookup(query, GET_EMAIL, context, Email)


SEND_EMAIL: Final[Operation[EmailRequest, Sent]] = send_operation(
    "send_email",
    EmailRequest.of,
    EmailProvider.send_email,
    "Send one e-mail (the reference is the Idempotency-Key).",
)
GET_EMAIL: Final[Operation[MessageLookup, Email]] = lookup_operation(
    "get_email", EmailProvider.get_email, Email, "One e-mail and its delivery status."
)
EmailProvider.operations = {SEND_EMAIL.name: SEND_EMAIL, GET_EMAIL.name: GET_EMAIL}
