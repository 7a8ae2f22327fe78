"""What the SMS and e-mail adapters share: one send and one lookup through the hub's client.

A message is sent with the hub's message id as its ``reference`` and as the
``Idempotency-Key``: the provider accepts a repeat as the same message (the same provider id,
nothing sent twice), so a send is safe to retry through the resilience path. Delivery is
reported later by the provider's receipt callbacks to ``/api/callbacks/v1/<adapter>``
(:mod:`hub.callbacks`), signed with the adapter's ``callback_secret`` (``options``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeVar

import httpx

from adapters._plugin import HubClientAdapter
from adapters.base import (
    CallContext,
    InvalidRequest,
    Operation,
    UpstreamError,
    call_extensions,
    quota_refused,
)

__all__ = [
    "REFERENCE",
    "MessageLookup",
    "MessageStatus",
    "MessagingAdapter",
    "Sent",
    "fields_of",
    "lookup_operation",
    "not_routable",
    "only",
    "send_operation",
    "text_field",
]

MessageStatus = Literal["accepted", "sent", "delivered", "failed"]
#: The hub's message ids: what a provider keys a message by.
REFERENCE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_PROVIDER_ID: Final = re.compile(r"[a-z]{2,3}_[0-9a-f]{20}")

Request = TypeVar("Request")
Message = TypeVar("Message")


def only(body: Mapping[str, Any], *names: str) -> None:
    """Refuse fields an operation does not take (a typo must not be silently ignored)."""
    extra = sorted(set(body) - set(names))
    if extra:
        raise InvalidRequest(f"unknown field(s): {', '.join(str(name)[:40] for name in extra)}")


def text_field(
    body: Mapping[str, Any], name: str, *, limit: int, pattern: re.Pattern[str] | None = None
) -> str:
    """A required string field of at most ``limit`` characters (matching ``pattern``)."""
    value = body.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise InvalidRequest(f"{name}: a string of 1 to {limit} characters is required")
    if pattern is not None and pattern.fullmatch(value) is None:
        raise InvalidRequest(f"{name} is malformed")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """The provider's answer to a send: its id for the message, and the status so far."""

    id: str
    reference: str
    status: MessageStatus
    accepted_at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageLookup:
    """A message by the provider's id."""

    id: str

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> MessageLookup:
        only(params, "id")
        value = params.get("id")
        if value is None or _PROVIDER_ID.fullmatch(value) is None:
            raise InvalidRequest("id: the provider's message id is missing or malformed")
        return cls(id=value)


def not_routable(_params: Mapping[str, str]) -> Any:
    raise InvalidRequest("this operation takes a JSON body")


def fields_of(kind: type[Any]) -> tuple[str, ...]:
    """The field names of a dataclass: what an operation's output may carry."""
    return tuple(kind.__dataclass_fields__)


def send_operation(
    name: str,
    parse_body: Callable[[Mapping[str, str], Mapping[str, Any]], Request],
    call: Callable[[Any, Request, CallContext], Awaitable[Sent]],
    summary: str,
) -> Operation[Request, Sent]:
    """A send: takes a JSON body, answers :class:`Sent`; idempotent, keyed by the reference."""
    return Operation(
        name=name,
        parse=not_routable,
        parse_body=parse_body,
        call=call,
        idempotent=True,  # keyed by the reference: a repeat is the same message
        fields=fields_of(Sent),
        summary=summary,
    )


def lookup_operation(
    name: str,
    call: Callable[[Any, MessageLookup, CallContext], Awaitable[Message | None]],
    into: type[Message],
    summary: str,
) -> Operation[MessageLookup, Message]:
    """A lookup by the provider's id (``?id=``), answering the message as ``into``."""
    return Operation(
        name=name, parse=MessageLookup.parse, call=call, fields=fields_of(into), summary=summary
    )


class MessagingAdapter(HubClientAdapter):
    """A notification provider plugin: one send and one lookup of a message.

    A subclass names its ``system``, ``path`` (``/v1/messages``, ``/v1/emails``) and
    ``operations``.
    """

    path: ClassVar[str]

    async def _send(
        self, body: dict[str, Any], operation: Operation[Any, Any], context: CallContext
    ) -> Sent:
        reference = str(body["reference"])
        response = await self._http.post(
            self.path,
            json=body,
            headers={
                "X-Request-ID": context.request_id,
                "Accept": "application/json",
                "Idempotency-Key": reference,
            },
            extensions=call_extensions(operation, context, idempotency_key=reference),
        )
        data = self._answer(response)
        if data is None:
            raise UpstreamError(f"the {self.system} answered 404 to a send")
        return Sent(
            id=str(data["id"]),
            reference=str(data["reference"]),
            status=data["status"],
            accepted_at=str(data["accepted_at"]),
        )

    async def _lookup(
        self,
        query: MessageLookup,
        operation: Operation[Any, Any],
        context: CallContext,
        into: type[Message],
    ) -> Message | None:
        """The message by the provider's id, as ``into`` (its fields of the answer), or ``None``."""
        response = await self._http.get(
            f"{self.path}/{query.id}",
            headers={"X-Request-ID": context.request_id, "Accept": "application/json"},
            extensions=call_extensions(operation, context),
        )
        data = self._answer(response)
        if data is None:
            return None
        return into(**{name: data[name] for name in fields_of(into)})

    def _answer(self, response: httpx.Response) -> dict[str, Any] | None:
        status = response.status_code
        if status == 404:
            return None
        if status in (200, 201, 202):
            data: dict[str, Any] = response.json()
            return data
        if status == 429:
            raise quota_refused(self.system, response)
        if status == 401:
            raise UpstreamError(f"the {self.system} refused the hub's credentials")
        if status == 409:
            raise InvalidRequest(f"the {self.system} holds another message under this reference")
        if status == 400:
            raise InvalidRequest(f"the {self.system} refused the message as malformed")
        raise UpstreamError(f"the {self.system} answered {status}")
