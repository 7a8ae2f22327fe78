"""Routes served by the payments API: the gateway's one dispatch point for ``payments`` routes.

The request has passed the gateway's authentication, rate limit and permission policy. Here:
the body is read (at most 64 KiB) and checked against the product contract
(``contracts/products/payments/v1``), the ``Idempotency-Key`` is required on every change, the
caller's identity becomes the payment's owner (a caller sees only its own payments), and the
answer is JSON with ``Cache-Control: no-store``. A stored answer replayed under its key carries
``Idempotent-Replayed: true``. Webhook routes need no credential: the provider's signature is
checked instead (:mod:`hub.payments.webhooks`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from adapters.base import CallContext
from hub.auth.principal import Principal
from hub.config.model import RoutePaymentsSpec
from hub.errors import (
    AdapterUnavailable,
    IdempotencyKeyRequired,
    InvalidHeader,
    InvalidRequest,
    PayloadTooLarge,
    Unauthorized,
)
from hub.payments.service import Answer, Payments
from hub.payments.webhooks import WebhookReceiver
from hub.problems import PROBLEM_CONTENT_TYPE, problem_dict

__all__ = ["OPERATION_IDS", "PaymentRoutes", "owner_of"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

_MAX_BODY: Final = 64 * 1024
_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")
_PAYMENT_ID: Final = re.compile(r"pay_[0-9a-f]{24}")
#: The contract's operation of each route operation (``contracts/products/payments/v1``).
OPERATION_IDS: Final = {
    "create": "createPayment",
    "get": "getPayment",
    "capture": "capturePayment",
    "cancel": "cancelPayment",
    "refund": "refundPayment",
    "list_refunds": "listRefunds",
}
_CHANGES: Final = frozenset({"create", "capture", "cancel", "refund"})


def owner_of(principal: Principal) -> str:
    """Whose payments these are: the signed-in person, or the calling application."""
    if principal.kind == "person":
        return f"person:{principal.subject}"
    return f"client:{principal.client_id or principal.subject}"


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise PayloadTooLarge(f"a payments request body is at most {_MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _schema_problem(validator: Any, data: Any) -> str | None:
    error = next(iter(validator.iter_errors(data)), None)
    if error is None:
        return None
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    if error.validator == "additionalProperties":
        return f"{where}: {error.message}"
    return f"{where} fails the schema's {error.validator!r} rule"


class _Contract:
    """The request schemas of the payments product, by route operation."""

    def __init__(self, folder: Path) -> None:
        api = yaml.safe_load((folder / "api.yaml").read_text(encoding="utf-8"))
        by_id = {op["operation_id"]: op for op in api["operations"]}
        self.requests: dict[str, Any] = {}
        for operation, operation_id in OPERATION_IDS.items():
            request = by_id[operation_id].get("request")
            if request:
                schema = json.loads((folder / request).read_text(encoding="utf-8"))
                self.requests[operation] = Draft202012Validator(schema)


class PaymentRoutes:
    """Serves routes whose ``payments`` names an operation, for the gateway."""

    def __init__(self, payments: Payments, webhooks: WebhookReceiver, contracts_dir: Path):
        self.payments = payments
        self.webhooks = webhooks
        self._folder = contracts_dir / "products" / "payments" / "v1"
        self._loaded: _Contract | None = None

    @property
    def _contract(self) -> _Contract:
        if self._loaded is None:
            try:
                self._loaded = _Contract(self._folder)
            except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
                raise AdapterUnavailable("the payments contract cannot be read") from exc
        return self._loaded

    async def serve(
        self,
        spec: RoutePaymentsSpec,
        *,
        params: Mapping[str, str],
        principal: Principal,
        headers: Sequence[tuple[bytes, bytes]],
        receive: Receive,
        request_id: str,
        path: str,
        send: Send,
    ) -> int:
        """Answer the request; returns the status sent. Refusals raise hub errors."""
        raw = await _body(receive)
        if spec.operation == "webhook":
            outcome = await self.webhooks.receive(
                spec.adapter,
                {
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in headers
                    if name.startswith(b"x-provider-")
                },
                raw,
            )
            answer = Answer(
                status=200,
                body={"event_id": outcome.event_id, "outcome": outcome.outcome},
            )
            return await self._send(answer, send, request_id, path)
        if principal.kind == "anonymous":
            raise Unauthorized("payments need an authenticated caller")
        owner = owner_of(principal)
        body = self._read(spec.operation, raw)
        context = CallContext(request_id=request_id, caller=owner)
        payments = self.payments
        if spec.operation == "create":
            key = self._key(headers)
            answer = await payments.create(
                owner=owner, key=key, adapter=spec.adapter, body=body, context=context
            )
            extra = [] if answer.status >= 400 else [(b"location", f"{path}/{answer.body['id']}")]
            return await self._send(answer, send, request_id, path, extra)
        payment_id = params.get("payment_id", "")
        if _PAYMENT_ID.fullmatch(payment_id) is None:
            raise InvalidRequest("a payment id looks like pay_ and 24 hex digits")
        if spec.operation == "get":
            answer = await payments.get(owner=owner, payment_id=payment_id)
        elif spec.operation == "list_refunds":
            answer = await payments.list_refunds(owner=owner, payment_id=payment_id)
        else:
            change = {
                "capture": payments.capture,
                "cancel": payments.cancel,
                "refund": payments.refund,
            }[spec.operation]
            key = self._key(headers)
            answer = await change(
                owner=owner, key=key, payment_id=payment_id, body=body, context=context
            )
        return await self._send(answer, send, request_id, path)

    @staticmethod
    def _key(headers: Sequence[tuple[bytes, bytes]]) -> str:
        key = _header(headers, b"idempotency-key")
        if key is None:
            raise IdempotencyKeyRequired(
                "send an Idempotency-Key header (a UUID, say) so that a retry cannot pay twice"
            )
        if _KEY.fullmatch(key) is None:
            raise InvalidHeader("Idempotency-Key must be 1-255 printable ASCII characters")
        return key

    def _read(self, operation: str, raw: bytes) -> dict[str, Any]:
        if operation not in _CHANGES:
            if raw.strip():
                raise InvalidRequest("this request takes no body")
            return {}
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("the body is not JSON") from None
        validator = self._contract.requests.get(operation)
        if validator is not None:
            problem = _schema_problem(validator, data)
            if problem is not None:
                raise InvalidRequest(f"the body breaks the contract: {problem}")
        if not isinstance(data, dict):
            raise InvalidRequest("the body must be a JSON object")
        return data

    @staticmethod
    async def _send(
        answer: Answer,
        send: Send,
        request_id: str,
        path: str,
        extra: Sequence[tuple[bytes, str]] = (),
    ) -> int:
        content_type = b"application/json"
        body = answer.body
        problem = body.get("problem") if answer.status >= 400 else None
        if isinstance(problem, dict):
            # A refusal stored under its key, told again with this request's own id.
            content_type = PROBLEM_CONTENT_TYPE
            body = problem_dict(
                status=answer.status,
                code=str(problem.get("code")),
                title=str(problem.get("title")),
                detail=str(problem.get("detail")),
                request_id=request_id,
                instance=path,
                extra=problem.get("extra") or None,
            )
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        response_headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-request-id", request_id.encode()),
            *((name, value.encode("latin-1")) for name, value in extra),
        ]
        if answer.replayed:
            response_headers.append((b"idempotent-replayed", b"true"))
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": response_headers}
        )
        await send({"type": "http.response.body", "body": payload})
        return answer.status
