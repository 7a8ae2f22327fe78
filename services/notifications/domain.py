"""The rules of notifications, without a server: recipients, preferences, channel plans, states.

- A recipient is who the inbox belongs to: ``"<kind>:<id>"`` of the hub's principal (a person,
  or an application acting for itself), the same pair the producing service put in the event.
- Preferences list the channels in the order they are tried. The inbox always holds the
  message; ``sms`` and ``email`` are delivery outside the platform, tried one after the other:
  a channel without an address is skipped, one that fails (the provider refuses it, every
  send attempt fails, or its receipt says ``failed``) falls back to the next. ``["inbox"]``
  alone sends nothing outside.
- A delivery moves only forward: ``pending`` → ``accepted`` → ``sent`` → ``delivered`` or
  ``failed`` (a late ``sent`` after ``delivered`` changes nothing), so receipts may come in any
  order and any number of times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from hub.errors import InvalidRequest
from services.notifications.templates import Language

__all__ = [
    "CHANNELS",
    "DEFAULT_CHANNELS",
    "EMAIL",
    "PHONE",
    "Channel",
    "Preferences",
    "advance",
    "mask",
    "owner_of",
    "parse_preferences",
    "plan",
]

Channel = Literal["sms", "email", "inbox"]
DeliveryStatus = Literal["pending", "accepted", "sent", "delivered", "failed", "skipped"]
CHANNELS: Final = ("sms", "email", "inbox")
#: Before a person chooses: e-mail first, then SMS; the inbox holds everything anyway.
DEFAULT_CHANNELS: Final[tuple[Channel, ...]] = ("email", "sms", "inbox")
EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
PHONE: Final = re.compile(r"\+[1-9][0-9]{6,14}")
_RANK: Final = {"pending": 0, "accepted": 1, "sent": 2, "delivered": 3, "failed": 3, "skipped": 3}


def owner_of(kind: str, subject: str) -> str:
    """The inbox a principal (or an event's recipient) owns."""
    return f"{kind}:{subject}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Preferences:
    """One recipient's channels (in order), language and own addresses."""

    channels: tuple[Channel, ...] = DEFAULT_CHANNELS
    language: Language = "en"
    email: str | None = None
    phone: str | None = None
    stored: bool = False


def parse_preferences(body: object) -> Preferences:
    """Preferences from a request body (``InvalidRequest`` naming every problem)."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", extra={"errors": ["$: object"]})
    errors = [f"{name}: unknown field" for name in body if name not in _FIELDS]
    channels = body.get("channels")
    if (
        not isinstance(channels, list)
        or not channels
        or any(c not in CHANNELS for c in channels)
        or len(set(channels)) != len(channels)
    ):
        errors.append("channels: a non-empty list of sms, email, inbox without repeats")
    language = body.get("language")
    if language not in ("en", "ar"):
        errors.append("language: en or ar")
    for name, pattern in (("email", EMAIL), ("phone", PHONE)):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not pattern.fullmatch(value)):
            errors.append(f"{name}: {'an e-mail address' if name == 'email' else 'E.164'}")
    if errors:
        raise InvalidRequest("; ".join(errors), extra={"errors": errors})
    assert isinstance(channels, list)
    return Preferences(
        channels=tuple(channels),
        language=language,  # type: ignore[arg-type]
        email=body.get("email"),
        phone=body.get("phone"),
        stored=True,
    )


_FIELDS: Final = frozenset({"channels", "language", "email", "phone"})


def plan(
    preferences: Preferences, recipient: Mapping[str, Any]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The channels to try in order with their addresses, and the ones skipped (no address).

    The person's own address wins over the one the producing service gave.
    """
    steps: list[tuple[str, str]] = []
    skipped: list[str] = []
    for channel in preferences.channels:
        if channel == "inbox":
            continue
        given = recipient.get("phone") if channel == "sms" else recipient.get("email")
        address = (preferences.phone if channel == "sms" else preferences.email) or given
        pattern = PHONE if channel == "sms" else EMAIL
        if isinstance(address, str) and pattern.fullmatch(address):
            steps.append((channel, address))
        else:
            skipped.append(channel)
    return steps, skipped


def advance(current: str, reported: str) -> str:
    """The delivery's status after a report: only ever forward; a final one stays."""
    if _RANK.get(current, 0) >= 3:
        return current
    return reported if _RANK.get(reported, 0) > _RANK.get(current, 0) else current


def mask(channel: str, address: str) -> str:
    """An address as the inbox shows it: enough to recognise, not enough to harvest."""
    if channel == "email":
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return address[:4] + "*" * max(len(address) - 7, 1) + address[-3:]
