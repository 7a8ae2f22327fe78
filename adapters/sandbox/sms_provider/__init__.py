"""The sandbox SMS provider: accepts text messages and reports delivery by signed receipts.

``python -m adapters.sandbox.sms_provider --port 9601``; the API, faults and receipts are
those of :mod:`adapters.sandbox._messaging.server`. A number ending in ``0000`` cannot be
reached (its receipt says ``failed``), so a test can walk the fallback to another channel.
"""

from __future__ import annotations

import re
from typing import Any, Final

from adapters.sandbox._messaging.server import Channel

__all__ = ["CHANNEL"]

_PHONE: Final = re.compile(r"\+[1-9][0-9]{6,14}")


def _check(body: dict[str, Any]) -> str | None:
    extra = sorted(set(body) - {"to", "text", "reference"})
    if extra:
        return f"unknown field(s): {', '.join(extra)}"
    if not isinstance(body.get("to"), str) or not _PHONE.fullmatch(body["to"]):
        return "to: an E.164 number (+ and up to 15 digits)"
    text = body.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= 1600:
        return "text: 1 to 1600 characters"
    return None


def _bounce(body: dict[str, Any]) -> str | None:
    return "the number is not reachable" if str(body["to"]).endswith("0000") else None


def _segments(body: dict[str, Any]) -> dict[str, Any]:
    text = str(body["text"])
    # GSM-7 fits 160 characters in one segment; anything else (Arabic) is UCS-2: 70.
    size = 160 if all(ord(c) < 128 for c in text) else 70
    return {"segments": max(1, -(-len(text) // size))}


CHANNEL: Final = Channel(
    name="sms-provider",
    path="/v1/messages",
    id_prefix="sms",
    check=_check,
    bounce=_bounce,
    fields=_segments,
)
