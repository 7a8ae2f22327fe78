"""What the registrar adapters share: one JSON read or write through the hub's client."""

from __future__ import annotations

from typing import Any

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

__all__ = ["RegistrarAdapter", "fetch_record", "send_json"]


async def fetch_record(
    http: httpx.AsyncClient,
    path: str,
    operation: Operation[Any, Any],
    context: CallContext,
    *,
    system: str,
) -> dict[str, Any] | None:
    """GET one record: its JSON (already checked against the contract), or ``None`` on 404."""
    response = await http.get(
        path,
        headers={"X-Request-ID": context.request_id, "Accept": "application/json"},
        extensions=call_extensions(operation, context),
    )
    return _answer(response, system)


async def send_json(
    http: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    operation: Operation[Any, Any],
    context: CallContext,
    *,
    system: str,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """POST a JSON body; the answer's JSON (checked against the contract)."""
    headers = {"X-Request-ID": context.request_id, "Accept": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    response = await http.post(
        path,
        json=body,
        headers=headers,
        extensions=call_extensions(operation, context, idempotency_key=idempotency_key),
    )
    data = _answer(response, system)
    if data is None:
        raise UpstreamError(f"the {system} answered 404")
    return data


def _answer(response: httpx.Response, system: str) -> dict[str, Any] | None:
    status = response.status_code
    if status == 404:
        return None
    if status in (200, 201):
        data: dict[str, Any] = response.json()
        return data
    if status == 429:
        # The hub's own limit should have kept us under the quota: its configuration is off.
        raise quota_refused(system, response)
    if status == 401:
        raise UpstreamError(f"the {system} refused the hub's credentials")
    if status == 400:
        raise InvalidRequest(f"the {system} refused the request as malformed")
    raise UpstreamError(f"the {system} answered {status}")


class RegistrarAdapter(HubClientAdapter):
    """A registrar plugin: a subclass names its ``system`` and its ``operations``."""
