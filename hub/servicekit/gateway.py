"""A domain service's only way out: the hub's gateway, called with the service's own credentials.

:class:`Gateway` is an OAuth client of the hub (client credentials): it fetches its token from
``/oauth2/token``, renews it before it expires, and once more when the hub answers 401 (the
token was revoked or the hub's keys rotated). On it stand the hub's APIs every service may
call: the payments API ``/api/payments/v1/payments`` (with an ``Idempotency-Key``, so a retry
never charges or refunds twice) and registrar reads ``/api/registry/v1/...?purpose=...`` (the
hub checks the purpose, cuts the answer to its fields and writes the read to its audit chain),
reused for a few seconds under load. A service subclasses it in its own ``hub_client.py``,
naming itself and its purpose, and adds the calls only it makes through :meth:`Gateway.call`.

No httpx exception leaves this module and no httpx response either: a hub that cannot answer
is :class:`~hub.errors.HubUnavailable`, an answer is an :class:`Answer`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import httpx

from hub.backends.events.base import Event
from hub.errors import HubUnavailable, InvalidRequest

__all__ = ["Answer", "Gateway", "Payment", "payment_outcome"]

#: A token is renewed this many seconds before it expires (or at half its life if shorter).
RENEW_MARGIN: Final = 30.0
_PAYMENT_ENDS: Final = frozenset({"captured", "failed", "cancelled", "expired"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the hub answered: the status, the JSON body (``None`` when not JSON), the headers."""

    status: int
    body: Any
    #: The answer's headers, by lower-case name.
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str:
        """The problem's ``code`` (empty when the body is not a problem)."""
        return str(self.body.get("code", "")) if isinstance(self.body, dict) else ""

    @property
    def problem(self) -> str:
        """The answer for a log or an error: ``HTTP <status> <code>: <detail>``."""
        if isinstance(self.body, dict):
            code, detail = self.body.get("code", ""), self.body.get("detail", "")
            return f"HTTP {self.status} {code}: {detail}".strip()
        return f"HTTP {self.status}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    """What the payments API answered about a fee's payment."""

    id: str
    state: str
    amount: int


def payment_outcome(event: Event, reference_prefix: str) -> tuple[str, str] | None:
    """The payment id and end (``captured``, ``failed``, ...) a ``payment.*`` event tells.

    ``None`` for another service's payment (its reference does not start with
    ``reference_prefix``) and for an event that is not an end.
    """
    reference = str(event.payload.get("reference") or "")
    payment_id = str(event.payload.get("payment_id") or "")
    if not reference.startswith(reference_prefix) or not payment_id:
        return None
    state = event.type.removeprefix("payment.")
    if state not in _PAYMENT_ENDS:
        return None
    return payment_id, state


class _Cache:
    """A small time-bounded cache of registrar answers (a few seconds of reuse under load)."""

    def __init__(self, seconds: float, clock: Callable[[], float], size: int = 10_000) -> None:
        self._seconds = seconds
        self._clock = clock
        self._size = size
        self._items: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def get(self, key: str) -> tuple[bool, dict[str, Any] | None]:
        hit = self._items.get(key)
        if hit is None or hit[0] < self._clock():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: dict[str, Any] | None) -> None:
        if self._seconds <= 0:
            return
        if len(self._items) >= self._size:
            self._items.clear()
        self._items[key] = (self._clock() + self._seconds, value)


class Gateway:
    """Calls the hub's gateway as one service's OAuth client."""

    #: The service, as the hub's refusal of its credentials names it ("the visa service's").
    service: ClassVar[str] = "domain"
    #: The purpose its registrar reads declare (the hub's ``purposes`` policy allows it).
    purpose: ClassVar[str] = ""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: str,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._lock = asyncio.Lock()
        self._cache = _Cache(cache_seconds, clock)

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        json: object = None,
    ) -> Answer:
        """Call the hub with the service's token; a 401 renews the token and calls once more."""
        for attempt in (1, 2):
            token = await self._bearer()
            answer = await self._send(
                method,
                path,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                params=params,
                json=json,
            )
            if answer.status_code == 401 and attempt == 1:
                self._token = None  # the token was revoked or the hub's keys rotated: renew once
                continue
            return _answer(answer)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- the hub's APIs for services --------------------------------------------------------

    async def registrar(self, kind: str, key: str) -> dict[str, Any] | None:
        """The registrar's record ``kind``/``key`` read for :attr:`purpose`; ``None`` if none."""
        if not self.purpose:
            raise NotImplementedError(f"{type(self).__name__} names no purpose to read registrars")
        cached, value = self._cache.get(f"{kind}:{key}")
        if cached:
            return value
        answer = await self.call(
            "GET", f"/api/registry/v1/{kind}/{key}", params={"purpose": self.purpose}
        )
        if answer.status == 404:
            self._cache.put(f"{kind}:{key}", None)
            return None
        if answer.status != 200:
            raise HubUnavailable(f"the {kind} registrar read failed: {answer.problem}")
        record: dict[str, Any] = answer.body
        self._cache.put(f"{kind}:{key}", record)
        return record

    async def create_payment(
        self, *, key: str, amount: int, currency: str, reference: str, description: str
    ) -> Payment:
        """Ask the payments API for a fee; the same ``key`` never charges twice."""
        answer = await self.call(
            "POST",
            "/api/payments/v1/payments",
            headers={"Idempotency-Key": key},
            json={
                "amount": amount,
                "currency": currency,
                "reference": reference,
                "description": description,
                "capture_method": "automatic",
            },
        )
        if answer.status == 422:
            raise InvalidRequest(f"the payment was refused: {answer.problem}")
        if answer.status not in {200, 201}:
            raise HubUnavailable(f"the payment could not be created: {answer.problem}")
        body = answer.body
        return Payment(id=str(body["id"]), state=str(body["state"]), amount=int(body["amount"]))

    async def refund(self, *, key: str, payment_id: str, amount: int, reason: str) -> None:
        """Refund ``amount`` of a fee's payment; the same ``key`` never refunds twice."""
        answer = await self.call(
            "POST",
            f"/api/payments/v1/payments/{payment_id}/refunds",
            headers={"Idempotency-Key": key},
            json={"amount": amount, "reason": reason},
        )
        if answer.status not in {200, 201}:
            raise HubUnavailable(f"the refund could not be made: {answer.problem}")

    # ---- the token --------------------------------------------------------------------------

    async def _bearer(self) -> str:
        if self._token is not None and self._clock() < self._token_until:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._token_until:
                return self._token
            answer = await self._send(
                "POST",
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, self._client_secret),
            )
            if answer.status_code != 200:
                raise HubUnavailable(
                    f"the hub refused the {self.service} service's credentials"
                    f" ({answer.status_code})"
                )
            body = _answer(answer).body
            if not isinstance(body, dict) or "access_token" not in body:
                raise HubUnavailable("the hub's token answer has no access_token")
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 300))
            self._token_until = self._clock() + max(lifetime - RENEW_MARGIN, lifetime / 2)
            return self._token

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HubUnavailable(f"the hub did not answer {method} {path}: {exc!r}") from exc


def _answer(response: httpx.Response) -> Answer:
    try:
        body = response.json()
    except ValueError:
        body = None
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Answer(status=response.status_code, body=body, headers=headers)
