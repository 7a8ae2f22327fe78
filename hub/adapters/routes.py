"""Routes served by an adapter operation: the gateway's one dispatch point for adapters.

The request has passed the gateway's authentication, rate limit and permission policy. Here:
the operation's input is parsed from the path parameters and the query; a registrar read must
name a purpose that covers the operation and that the caller may use (checked before the
external system is called); the output is cut to the purpose's fields; and the read is written
to the hash-chained audit log before the answer is sent. If the log cannot be written the read
is refused with ``503 audit_unavailable``: never served unlogged.

An operation that takes a body (``Operation.parse_body``: sending an SMS or an e-mail) gets
the request's JSON object (at most 64 KiB) besides the parameters; a missing, oversized or
non-object body is refused before the external system is called.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from adapters.base import CallContext, Operation
from hub.adapters.purposes import Purposes, project
from hub.adapters.registry import AdapterRegistry
from hub.audit.chain import AuditDraft
from hub.audit.log import AuditLog
from hub.auth.principal import Principal
from hub.config.model import RouteAdapterSpec
from hub.config.snapshot import Snapshot
from hub.errors import (
    AdapterUnavailable,
    HubError,
    InvalidHeader,
    InvalidRequest,
    PayloadTooLarge,
    RecordNotFound,
)

__all__ = ["ON_BEHALF_OF", "AdapterRoutes"]

#: The request header in which a caller says on whose behalf it reads (an application, a case).
ON_BEHALF_OF = b"x-on-behalf-of"
_ON_BEHALF = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._@/-]{0,127}")
_MAX_PARAMS = 16
_MAX_BODY = 64 * 1024

RolesOf = Callable[[Principal], Awaitable[frozenset[str]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def _json_body(receive: Receive | None) -> dict[str, Any]:
    """The request's JSON object body (refused when absent, too large, or not an object)."""
    chunks: list[bytes] = []
    size = 0
    while receive is not None:
        message = await receive()
        if message.get("type") != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise PayloadTooLarge(f"an adapter request body is at most {_MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    if not raw:
        raise InvalidRequest("this operation needs a JSON body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def _query(query: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            query.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=_MAX_PARAMS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the query string cannot be read") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"query parameter {name[:40]!r} is given twice")
        params[name] = value
    return params


def _on_behalf_of(headers: Sequence[tuple[bytes, bytes]], principal: Principal) -> str | None:
    for name, value in headers:
        if name == ON_BEHALF_OF:
            text = value.decode("latin-1")
            if not _ON_BEHALF.fullmatch(text):
                raise InvalidHeader(
                    "X-On-Behalf-Of must be 1-128 characters: letters, digits and :._@/-"
                )
            return text
    return principal.establishment


class AdapterRoutes:
    """Serves routes whose ``adapter`` names an operation, for the gateway."""

    def __init__(self, registry: AdapterRegistry, audit: AuditLog, roles_of: RolesOf) -> None:
        self.registry = registry
        self.audit = audit
        self._roles_of = roles_of
        self._purposes: tuple[int, Purposes] | None = None

    def purposes(self, snapshot: Snapshot) -> Purposes:
        """The compiled purposes of the snapshot's version (compiled once per version)."""
        cached = self._purposes
        if cached is None or cached[0] != snapshot.version:
            cached = self._purposes = (snapshot.version, Purposes(snapshot.document.purposes))
        return cached[1]

    async def serve(
        self,
        spec: RouteAdapterSpec,
        *,
        snapshot: Snapshot,
        params: Mapping[str, str],
        query: bytes,
        principal: Principal,
        headers: Sequence[tuple[bytes, bytes]],
        request_id: str,
        send: Send,
        receive: Receive | None = None,
    ) -> int:
        """Answer the request; returns the status sent. Refusals raise hub errors."""
        live = self.registry.get(spec.name)
        adapter = live.require()
        operation: Operation[Any, Any] | None = adapter.operations.get(spec.operation)
        if operation is None:
            raise AdapterUnavailable(f"{spec.name} has no operation {spec.operation!r}")
        inputs = _query(query)
        purpose_code = inputs.pop("purpose", None)
        grant = None
        if operation.record is not None:
            purposes = self.purposes(snapshot)
            grant = purposes.grant(purpose_code, spec.name, spec.operation)
            roles: frozenset[str] = frozenset()
            if purposes.needs_roles(grant.purpose) and principal.kind == "person":
                roles = await self._roles_of(principal)
            purposes.check_principal(grant.purpose, principal, roles)
        elif purpose_code is not None:
            inputs["purpose"] = purpose_code  # not a registrar read: an ordinary parameter
        on_behalf_of = _on_behalf_of(headers, principal)
        if operation.parse_body is not None:
            request = operation.parse_body({**inputs, **params}, await _json_body(receive))
        else:
            request = operation.parse({**inputs, **params})
        context = CallContext(
            request_id=request_id, caller=principal.client_id or principal.subject
        )
        result = await operation.call(adapter, request, context)
        body: dict[str, Any] | None = None
        returned: list[str] = []
        if result is not None:
            record = dataclasses.asdict(result)
            body, returned = project(record, grant.fields) if grant else (record, sorted(record))
        entry_seq = None
        if grant is not None:
            key = str(getattr(request, operation.key, "")) if operation.key else ""
            person = key if operation.record == "person" else None
            if body is not None and operation.subject_field in returned:
                person = str(body[operation.subject_field])
            entry = await self.audit.append(
                AuditDraft(
                    kind="read",
                    at=datetime.now(UTC),
                    actor=principal.subject,
                    actor_kind=principal.kind,
                    client_id=principal.client_id,
                    on_behalf_of=on_behalf_of,
                    adapter=spec.name,
                    operation=spec.operation,
                    record_kind=operation.record,
                    record_ref=key or None,
                    person_ref=person,
                    purpose=grant.purpose.id,
                    fields=tuple(returned),
                    outcome="found" if body is not None else "not_found",
                    request_id=request_id,
                    config_version=snapshot.version,
                )
            )
            entry_seq = entry.seq
        if body is None:
            error: HubError = RecordNotFound(f"{spec.name} has no such record")
            if entry_seq is not None:
                error.headers["X-Hub-Audit-Entry"] = str(entry_seq)
            raise error
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            # Registrar data: never kept by a shared cache or the browser.
            (b"cache-control", b"no-store"),
            (b"x-request-id", request_id.encode()),
        ]
        if grant is not None:
            response_headers.append((b"x-hub-purpose", grant.purpose.id.encode()))
        if entry_seq is not None:
            response_headers.append((b"x-hub-audit-entry", str(entry_seq).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})
        return 200
