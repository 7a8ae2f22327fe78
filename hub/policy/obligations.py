"""Obligations of an allow decision, applied to the JSON response: mask fields, drop fields.

Field paths are ``$`` then ``.name`` or ``[*]`` (every item of a list) steps, e.g.
``$.person.national_id`` or ``$.items[*].phone``; a path that finds nothing changes nothing.

- ``mask`` keeps the last ``keep_last`` characters of a text or number and replaces the rest
  with ``*`` (a number becomes text); a value no longer than ``keep_last`` is masked whole, and
  an object, list or boolean at a masked path becomes ``null``: a mask never reveals more than
  the last characters. ``null`` stays ``null``.
- ``drop`` removes the field wherever the path reaches it.

A path ends with a field name: ``$.items[*].phone`` masks or drops a field of every item.

Only the responses of requests whose decision carries obligations are buffered, up to
``HUB_MAX_BODY_BYTES`` (the route's ``max_body_bytes`` when larger); every other answer still
streams. Requests under obligations are sent upstream without ``Accept-Encoding`` so the body
comes back readable. What cannot be inspected fails closed: a 2xx answer that is not JSON
(``application/json`` or ``+json``), is compressed, does not parse, or is too large becomes
``502 obligation_failed``. A non-2xx answer that is not JSON passes unchanged (an upstream's
error page carries none of the resource's fields); a JSON one is transformed like any other.
``HEAD``, 204 and 304 answers have no body and pass unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.errors import ObligationFailed
from hub.policy.model import ObligationSpec

__all__ = ["ObligatedSend", "Obligations", "compile_obligations", "parse_field_path"]

Send = Callable[[dict[str, Any]], Any]
Step = str | None  # a key, or None for [*]

_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[\*\]|\['([^'\\]+)'\]")
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;|$)")


def parse_field_path(path: str) -> tuple[Step, ...]:
    """``$.a[*].b`` -> ``("a", None, "b")``; ``ValueError`` naming the problem otherwise."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r} must start with '$'")
    steps: list[Step] = []
    at = 1
    while at < len(path):
        found = _STEP.match(path, at)
        if found is None:
            raise ValueError(f"{path!r}: unexpected {path[at:]!r} (use .name and [*] steps)")
        steps.append(found.group(1) or found.group(2))
        at = found.end()
    if not steps or steps[-1] is None:
        raise ValueError(f"{path!r} must end with a field name")
    return tuple(steps)


def _masked(value: Any, keep: int) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) <= keep:
        return "*" * len(text)
    return "*" * (len(text) - keep) + (text[-keep:] if keep else "")


def _walk(node: Any, steps: tuple[Step, ...], at: int, leaf: Callable[[Any, Any], None]) -> None:
    """Call ``leaf(container, key)`` for every place the steps reach."""
    step = steps[at]
    last = at == len(steps) - 1
    if step is None:
        if isinstance(node, list):
            for item in node:
                _walk(item, steps, at + 1, leaf)
        return
    if not isinstance(node, dict) or step not in node:
        return
    if last:
        leaf(node, step)
    else:
        _walk(node[step], steps, at + 1, leaf)


@dataclass(frozen=True, slots=True)
class Obligations:
    """Compiled obligations: applied in place to a parsed JSON document."""

    masks: tuple[tuple[tuple[Step, ...], int], ...] = ()
    drops: tuple[tuple[Step, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.masks or self.drops)

    def merged(self, other: Obligations) -> Obligations:
        """Both sets of obligations (several allow rules matched): the stricter union."""
        if not other:
            return self
        if not self:
            return other
        return Obligations(
            masks=tuple(dict.fromkeys(self.masks + other.masks)),
            drops=tuple(dict.fromkeys(self.drops + other.drops)),
        )

    def apply(self, document: Any) -> Any:
        """Mask, then drop, in place; returns the document."""
        for steps, keep in self.masks:

            def mask(container: Any, key: Any, keep: int = keep) -> None:
                container[key] = _masked(container[key], keep)

            if steps:
                _walk(document, steps, 0, mask)
        for steps in self.drops:
            _walk(document, steps, 0, _drop)
        return document

    def transform(self, body: bytes) -> bytes:
        """The JSON body with the obligations applied; ``ValueError`` when it is not JSON."""
        document = json.loads(body)
        self.apply(document)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def describe(self) -> dict[str, list[str]]:
        """For the explain endpoint: the field paths, as written."""
        return {
            "mask": [f"{_show(steps)} (keep last {keep})" for steps, keep in self.masks],
            "drop": [_show(steps) for steps in self.drops],
        }


def _drop(container: Any, key: Any) -> None:
    del container[key]


def _show(steps: tuple[Step, ...]) -> str:
    return "$" + "".join("[*]" if s is None else f".{s}" for s in steps)


NONE = Obligations()


def compile_obligations(spec: ObligationSpec) -> Obligations:
    """The spec's paths parsed once (the validator has already refused bad ones)."""
    if not spec.mask and not spec.drop:
        return NONE
    return Obligations(
        masks=tuple((parse_field_path(m.field), m.keep_last) for m in spec.mask),
        drops=tuple(parse_field_path(path) for path in spec.drop),
    )


class ObligatedSend:
    """An ASGI ``send`` that holds the response, applies obligations, then sends it whole.

    ``sent`` stays false until something reached the client, so a refusal raised here (an
    :class:`ObligationFailed`) can still be answered as a problem by the caller.
    """

    __slots__ = ("_body", "_head", "_limit", "_method", "_obligations", "_send", "_size", "sent")

    def __init__(self, send: Send, obligations: Obligations, *, limit: int, method: str) -> None:
        self._send = send
        self._obligations = obligations
        self._limit = limit
        self._method = method
        self._head: dict[str, Any] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self.sent = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self._head = message
            return
        if message["type"] != "http.response.body" or self._head is None:
            await self._send(message)
            return
        chunk: bytes = message.get("body", b"")
        self._size += len(chunk)
        if self._size > self._limit:
            raise ObligationFailed(
                f"the answer is larger than {self._limit} bytes, too large to apply the"
                " route's obligations"
            )
        self._body.append(chunk)
        if message.get("more_body", False):
            return
        await self._finish(b"".join(self._body))

    async def _finish(self, body: bytes) -> None:
        head = self._head
        assert head is not None
        status: int = head["status"]
        headers: list[tuple[bytes, bytes]] = head["headers"]
        if self._method != "HEAD" and status not in (204, 304) and body:
            transformed = self._transformed(status, headers, body)
            if transformed is not None:
                body = transformed
                headers = [
                    (name, value)
                    for name, value in headers
                    if name not in (b"content-length", b"etag")
                ]
                headers.append((b"content-length", str(len(body)).encode()))
                head = {**head, "headers": headers}
        self.sent = True
        await self._send(head)
        await self._send({"type": "http.response.body", "body": body})

    def _transformed(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes | None:
        """The body under obligations; ``None`` to pass it unchanged (a non-JSON error)."""
        content_type = encoding = ""
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
            elif name == b"content-encoding":
                encoding = value.decode("latin-1").strip().lower()
        success = 200 <= status < 300
        readable = bool(_JSON_TYPE.match(content_type)) and encoding in ("", "identity")
        if not readable:
            if success:
                raise ObligationFailed(
                    "the upstream's answer is not plain JSON, so the route's obligations"
                    " cannot be applied"
                )
            return None
        try:
            return self._obligations.transform(body)
        except ValueError as exc:
            if success:
                raise ObligationFailed(
                    "the upstream's answer is not valid JSON, so the route's obligations"
                    " cannot be applied"
                ) from exc
            return None
