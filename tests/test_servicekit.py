"""The service kit (``hub.servicekit``) on its own: the gateway client, cursors, hashes, settings.

The gateway client talks to a tiny fake hub behind ``httpx.MockTransport``; its clock is a
parameter, so token expiry is tested without waiting.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import httpx
import pytest

from hub.errors import (
    ConfigError,
    HubUnavailable,
    IdempotencyKeyRequired,
    InvalidHeader,
    InvalidRequest,
)
from hub.servicekit.gateway import Answer, Gateway
from hub.servicekit.idempotency import check_key, request_hash
from hub.servicekit.paging import decode_cursor, encode_cursor, page_of
from hub.servicekit.settings import ServiceEnv, ServiceSettings

HUB = "http://hub.test"


class FakeHub:
    """The hub's token endpoint and one API route, counting what they were asked."""

    def __init__(self, *, expires_in: int = 300, refuse_first_call: bool = False) -> None:
        self.expires_in = expires_in
        self.refuse_first_call = refuse_first_call
        self.tokens = 0
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            self.tokens += 1
            assert request.headers["authorization"].startswith("Basic ")
            return httpx.Response(
                200,
                json={"access_token": f"tok-{self.tokens}", "expires_in": self.expires_in},
            )
        bearer = request.headers.get("authorization", "")
        self.calls.append(bearer)
        if self.refuse_first_call and len(self.calls) == 1:
            return httpx.Response(401, json={"code": "invalid_token", "detail": "revoked"})
        if request.url.path == "/api/registry/v1/establishments/404":
            return httpx.Response(404, json={"code": "record_not_found", "detail": "none"})
        return httpx.Response(200, json={"ok": True, "purpose": request.url.params.get("purpose")})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class VisaLike(Gateway):
    service = "test"
    purpose = "testing"


def gateway(hub: Any, clock: Clock | None = None, cls: type[Gateway] = VisaLike) -> Gateway:
    http = httpx.AsyncClient(base_url=HUB, transport=httpx.MockTransport(hub))
    return cls(http, client_id="svc", client_secret="s3cret", clock=clock or Clock())


async def test_the_token_is_reused_then_renewed_before_it_expires() -> None:
    hub, clock = FakeHub(expires_in=300), Clock()
    client = gateway(hub, clock)
    await client.call("GET", "/api/x")
    await client.call("GET", "/api/x")
    assert hub.tokens == 1
    clock.now += 300 - 30 - 1  # just inside the renewal margin's start: still the old token
    await client.call("GET", "/api/x")
    assert hub.tokens == 1
    clock.now += 2  # 30 s before expiry: renewed ahead of time
    await client.call("GET", "/api/x")
    assert hub.tokens == 2
    assert hub.calls == ["Bearer tok-1"] * 3 + ["Bearer tok-2"]


async def test_a_401_renews_the_token_and_calls_once_more() -> None:
    hub = FakeHub(refuse_first_call=True)
    answer = await gateway(hub).call("GET", "/api/x")
    assert answer.status == 200
    assert hub.tokens == 2
    assert hub.calls == ["Bearer tok-1", "Bearer tok-2"]


async def test_a_second_401_is_the_answer() -> None:
    hub = FakeHub()

    def always_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return hub(request)
        hub.calls.append(request.headers["authorization"])
        return httpx.Response(401, json={"code": "invalid_token", "detail": "no"})

    answer = await gateway(always_401).call("GET", "/api/x")
    assert (answer.status, answer.code, len(hub.calls)) == (401, "invalid_token", 2)
    assert answer.problem == "HTTP 401 invalid_token: no"


async def test_transport_errors_are_hub_unavailable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(HubUnavailable) as caught:
        await gateway(down).call("GET", "/api/x")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_refused_credentials_are_hub_unavailable() -> None:
    def refuses(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"code": "invalid_client"})

    with pytest.raises(HubUnavailable, match="refused the test service's credentials"):
        await gateway(refuses).call("GET", "/api/x")


async def test_registrar_reads_carry_the_purpose_and_are_reused() -> None:
    hub, clock = FakeHub(), Clock()
    client = gateway(hub, clock)
    assert await client.registrar("establishments", "1") == {"ok": True, "purpose": "testing"}
    assert await client.registrar("establishments", "1") is not None
    assert await client.registrar("establishments", "404") is None
    assert await client.registrar("establishments", "404") is None
    assert len(hub.calls) == 2  # one read each, the second ones from the cache
    clock.now += 31
    await client.registrar("establishments", "1")
    assert len(hub.calls) == 3


async def test_a_gateway_without_a_purpose_reads_no_registrar() -> None:
    with pytest.raises(NotImplementedError):
        await gateway(FakeHub(), cls=Gateway).registrar("persons", "1")


async def test_payments_refusals_and_failures() -> None:
    def payments(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        assert request.headers["idempotency-key"] == "k1"
        amount = json.loads(request.content)["amount"]
        if amount == 0:
            return httpx.Response(422, json={"code": "invalid_request", "detail": "amount"})
        if amount == 1:
            return httpx.Response(503, text="down")
        return httpx.Response(201, json={"id": "pay_1", "state": "pending", "amount": amount})

    client = gateway(payments)
    fee = {"key": "k1", "currency": "SAR", "reference": "r", "description": "d"}
    payment = await client.create_payment(amount=500, **fee)
    assert (payment.id, payment.state, payment.amount) == ("pay_1", "pending", 500)
    with pytest.raises(InvalidRequest, match="HTTP 422 invalid_request: amount"):
        await client.create_payment(amount=0, **fee)
    with pytest.raises(HubUnavailable, match=r"could not be created: HTTP 503$"):
        await client.create_payment(amount=1, **fee)


def test_an_answer_that_is_not_a_problem() -> None:
    assert Answer(status=502, body=None).problem == "HTTP 502"
    assert Answer(status=502, body=["x"]).code == ""


# ---- idempotency ----------------------------------------------------------------------------


def test_request_hash_is_of_the_canonical_json() -> None:
    expected = hashlib.sha256('{"a":[1,2],"b":"é"}'.encode()).hexdigest()
    assert request_hash({"b": "é", "a": [1, 2]}) == expected
    assert request_hash({"a": [1, 2], "b": "é"}) == expected
    assert request_hash({"a": [2, 1], "b": "é"}) != expected


def test_idempotency_keys() -> None:
    assert check_key("key-1") == "key-1"
    with pytest.raises(IdempotencyKeyRequired, match=r"^an application needs"):
        check_key(None, what="an application")
    for bad in ("", "has space", "x" * 201, "é"):
        with pytest.raises(InvalidHeader):
            check_key(bad)


# ---- paging ---------------------------------------------------------------------------------


def test_a_cursor_round_trips() -> None:
    at = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone(timedelta(hours=3)))
    cursor = encode_cursor(at, "vp_1|2")
    assert "=" not in cursor
    moment, row_id = decode_cursor(cursor)
    assert (moment, row_id) == (at, "vp_1|2")
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "!!!",
        "bm90IGEgY3Vyc29y",
        encode_cursor(datetime(2026, 12, 3, 14, 32, tzinfo=UTC), "x")[:-3] + "AAA",
        "MjAyNnw",
    ],
)
def test_a_forged_cursor_is_invalid_request(forged: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor: not a cursor this listing gave"):
        decode_cursor(forged)


def test_a_cursor_without_a_zone_is_refused() -> None:
    naive = base64.urlsafe_b64encode(b"2026-01-01T00:00:00|id").decode()
    with pytest.raises(InvalidRequest):
        decode_cursor(naive)


def test_page_of_reads_one_more_row_than_it_gives() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"id": f"r{n}", "at": at - timedelta(minutes=n)} for n in range(3)]
    page = page_of(rows, 2, at="at")
    assert [row["id"] for row in page.items] == ["r0", "r1"]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == (rows[1]["at"], "r1")
    assert page_of(rows[:2], 2, at="at").next_cursor is None


# ---- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings(ServiceSettings):
    prefix: ClassVar[str] = "DEMOSVC"
    database_file: ClassVar[str] = "demo.db"

    port: int = 9999
    audience: str = "demo"
    sweep_seconds: float = 5.0
    days: int = 7

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        return {"days": env.whole("DAYS", 7, low=1, high=30, unit="days")}


BUS = {"DEMOSVC_BUS_DATABASE_URL": "sqlite+aiosqlite:///hub.db"}


def test_settings_defaults_come_from_the_service() -> None:
    settings = DemoSettings.from_env(BUS)
    assert (settings.port, settings.audience, settings.sweep_seconds, settings.days) == (
        9999,
        "demo",
        5.0,
        7,
    )
    assert settings.database_url.endswith("/demo.db")
    assert settings.issuer == "http://127.0.0.1:8080"
    tuned = DemoSettings.from_env(
        {**BUS, "DEMOSVC_PORT": "9001", "DEMOSVC_DAYS": "3", "DEMOSVC_DEMO": "yes",
         "DEMOSVC_HUB_URL": "http://hub:1/", "DEMOSVC_CLIENT_SECRET": "s3cret"}
    )  # fmt: skip
    assert (tuned.port, tuned.days, tuned.demo, tuned.hub_url) == (9001, 3, True, "http://hub:1")
    assert "s3cret" not in repr(tuned)


def test_settings_list_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        DemoSettings.from_env(
            {"DEMOSVC_PORT": "70000", "DEMOSVC_DAYS": "31", "DEMOSVC_SWEEP_SECONDS": "x",
             "DEMOSVC_HUB_TIMEOUT_SECONDS": "-1", "DEMOSVC_DATABASE_SCHEMA": "demo"}
        )  # fmt: skip
    assert caught.value.issues == [
        "DEMOSVC_PORT: '70000' is not a port number",
        "DEMOSVC_SWEEP_SECONDS: 'x' is not a number",
        "DEMOSVC_HUB_TIMEOUT_SECONDS: '-1' must not be negative",
        "DEMOSVC_DAYS: '31' is not 1 to 30 days",
        "DEMOSVC_DATABASE_SCHEMA: only a PostgreSQL database has schemas",
        "DEMOSVC_BUS_DATABASE_URL or DEMOSVC_AMQP_URL: the service needs a bus",
    ]
