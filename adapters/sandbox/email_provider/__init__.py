"""The sandbox e-mail provider: accepts e-mails and reports delivery by signed receipts.

``python -m adapters.sandbox.email_provider --port 9602``; the API, faults and receipts are
those of :mod:`adapters.sandbox._messaging.server`. An address at ``bounce.example`` bounces
(its receipt says ``failed``), so a test can walk the fallback to another channel.
"""

from __future__ import annotations

import re
from typing import Any, Final

from adapters.sandbox._messaging.server import Channel

__all__ = ["CHANNEL"]

_ADDRESS: Final = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
_FIELDS: Final = frozenset({"to", "subject", "text", "html", "language", "reference"})


def _check(body: dict[str, Any]) -> str | None:
    extra = sorted(set(body) - _FIELDS)
    if extra:
        return f"unknown field(s): {', '.join(extra)}"
    if not isinstance(body.get("to"), str) or not _ADDRESS.fullmatch(body["to"]):
        return "to: an e-mail address"
    for name, limit in (("subject", 300), ("text", 20_000)):
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= limit:
            return f"{name}: 1 to {limit} characters"
    if "html" in body and not isinstance(body["html"], str):
        return "html: a string"
    return None


def _bounce(body: dict[str, Any]) -> str | None:
    if str(body["to"]).lower().endswith("@bounce.example"):
        return "550 the mailbox does not exist"
    return None


CHANNEL: Final = Channel(
    name="email-provider", path="/v1/emails", id_prefix="em", check=_check, bounce=_bounce
)
