"""The compliance service in-process, on SQLite and PostgreSQL (its own schema).

The contract service's ``contract.activated`` / ``contract.terminated`` events are published on
the bus by the tests themselves (that service is built elsewhere); the commercial registry is
answered by the stand-in hub (tests/registry_support.py), which checks the purpose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hub.backends.events.base import Event
from services.compliance.app import create_app
from services.compliance.settings import ComplianceSettings
from tests.registry_support import RegistryHub
from tests.service_support import Running, principal, problem, product_schema, serve, storage
from tests.visas_support import ISSUER

BASE = "/api/compliance/v1"
EST, OTHER = "est_demo", "est_other"
CR = "4030000001"  # retail: 0.30 required
schema = partial(product_schema, "compliance")


def contract(
    kind: str, number: int, *, citizen: bool, establishment: str = EST, **extra: Any
) -> Event:
    return Event(
        type=f"contract.{kind}",
        payload={
            "contract_id": f"ct_{establishment}_{number}",
            "establishment_id": establishment,
            "employee": {"id": f"person-{number}", "citizen": citizen,
                         "nationality": "SAU" if citizen else "IND"},
            "occupation": "5223",
            "state": kind,
            "at": "2026-01-01T00:00:00+00:00",
            **extra,
        },
    )  # fmt: skip


class World:
    def __init__(self, service: Running, hub: RegistryHub) -> None:
        self.service = service
        self.client = service.client
        self.hub = hub
        self.auth = auth = partial(principal, hub, audience="compliance")
        self.owner = auth("p-owner", memberships=(f"{EST}:owner",))
        self.hr = auth("p-hr", delegated=(f"{EST}:compliance.read",))
        self.officer = auth("p-officer", roles=("agency_officer",))
        self.other_owner = auth("p-x", memberships=(f"{OTHER}:owner",))

    @property
    def workflow(self) -> Any:
        return self.service.app.state["compliance"].workflow

    async def publish(self, *events: Event) -> None:
        before = (await self.workflow.store.table_counts())["processed_events"]
        for event in events:
            await self.service.bus.publish(event)
        for _ in range(250):
            if (await self.workflow.store.table_counts())["processed_events"] >= before + len(
                events
            ):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the service did not consume the events")

    async def register(self, cr: str = CR, headers: dict[str, str] | None = None) -> Any:
        return await self.client.put(
            f"{BASE}/establishments/{EST}/registration",
            content=json.dumps({"cr_number": cr}),
            headers=headers or self.owner,
        )

    async def standing(self, headers: dict[str, str] | None = None) -> Any:
        return await self.client.get(
            f"{BASE}/establishments/{EST}/standing", headers=headers or self.hr
        )

    async def bands(self, count: int) -> list[tuple[str | None, str]]:
        changes = await self.service.wait_events(
            lambda e: e.type == "compliance.band.changed", count
        )
        return [(e.payload["previous"], e.payload["band"]) for e in changes]


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = ComplianceSettings(
        **await storage(database_url, tmp_path, "compliance"),
        hub_url=ISSUER,
        client_id="compliance-service",
        client_secret="s3cret",
        bus_database_url="unused",
        refresh_seconds=3600,
    )
    hub = RegistryHub()
    probe = principal(hub, "p-probe", audience="compliance")
    url = f"{BASE}/establishments/x/standing"
    async with serve(create_app, settings, hub, probe=url, headers=probe) as service:
        yield World(service, hub)


async def test_the_band_follows_the_workforce_and_moves_are_events(world: World) -> None:
    registered = await world.register()
    assert registered.status_code == 200, registered.text
    assert registered.json()["sector"] == "retail"
    assert registered.json()["band"] == "exempt"  # nobody employed yet
    assert ("GET", f"/api/registry/v1/establishments/{CR}") in world.hub.calls
    citizens = [contract("activated", n, citizen=True) for n in range(4)]
    foreigners = [contract("activated", n, citizen=False) for n in range(4, 12)]
    await world.publish(*citizens, *foreigners)  # 4 of 12: 0.33 against 0.30
    body = (await world.standing()).json()
    jsonschema.validate(body, schema("standing.schema.json"))
    assert (body["band"], body["citizens"], body["total"], body["size_band"]) == (
        "green", 4, 12, "small",
    )  # fmt: skip
    await world.publish(
        contract("terminated", 0, citizen=True), contract("terminated", 1, citizen=True)
    )
    assert (await world.standing()).json()["band"] == "yellow"  # 2 of 10: 0.2
    await world.publish(contract("terminated", 4, citizen=False))
    assert (await world.standing()).json()["band"] == "exempt"  # 9 employees
    await world.publish(*(contract("activated", n, citizen=False) for n in range(20, 26)))
    assert (await world.standing()).json()["band"] == "red"  # 2 of 15: 0.13
    assert await world.bands(6) == [
        (None, "exempt"), ("exempt", "green"), ("green", "yellow"), ("yellow", "exempt"),
        ("exempt", "yellow"),  # 2 of 10 again
        ("yellow", "red"),  # from 2 of 14
    ]  # fmt: skip
    last = world.service.of_type("compliance.band.changed")[-1].payload
    names = ("establishment_id", "citizens", "total", "sector", "size_band")
    assert {k: last[k] for k in names} == {
        "establishment_id": EST, "citizens": 2, "total": 14, "sector": "retail",
        "size_band": "small",
    }  # fmt: skip
    assert last["ratio"] == round(2 / 14, 4)
    notices = await world.service.wait_events(lambda e: e.type == "notification.requested", 6)
    assert [n.payload["data"]["band"] for n in notices] == [
        "exempt",
        "green",
        "yellow",
        "exempt",
        "yellow",
        "red",
    ]
    assert all(n.payload["recipient"]["id"] == EST and "channels" not in n.payload for n in notices)
    history = await world.client.get(f"{BASE}/establishments/{EST}/history", headers=world.hr)
    jsonschema.validate(history.json(), schema("history.schema.json"))
    assert [h["band"] for h in history.json()["items"]] == [
        "red",
        "yellow",
        "exempt",
        "yellow",
        "green",
        "exempt",
    ]


async def test_no_band_is_guessed_before_the_sector_is_known(world: World) -> None:
    await world.publish(*(contract("activated", n, citizen=False) for n in range(12)))
    unknown = (await world.standing(world.officer)).json()
    assert (unknown["band"], unknown["total"], unknown["sector"]) == (None, 12, None)
    assert not world.service.of_type("compliance.band.changed")
    world.hub.fail_registry = True
    pending = await world.register()
    assert pending.status_code == 200
    assert (pending.json()["band"], pending.json()["cr_number"]) == (None, CR)
    world.hub.fail_registry = False
    assert await world.workflow.refresh() == 1
    assert (await world.standing()).json()["band"] == "red"
    assert await world.bands(1) == [(None, "red")]
    assert await world.workflow.refresh() == 0  # fresh now: not read again


async def test_a_cr_number_in_a_contract_event_is_bound_and_read(world: World) -> None:
    await world.publish(contract("activated", 1, citizen=True, cr_number=CR))
    assert (await world.standing()).json()["cr_number"] == CR
    assert await world.workflow.refresh() == 1
    assert (await world.standing()).json()["band"] == "exempt"


async def test_the_same_person_counts_once_and_redeliveries_apply_once(world: World) -> None:
    await world.register()
    first = contract("activated", 1, citizen=True)
    twin = Event(type=first.type, payload={**first.payload, "contract_id": "ct_second"})
    await world.publish(first, twin)
    await world.service.bus.publish(first)
    await world.publish(contract("activated", 2, citizen=False))
    assert (await world.standing()).json()["total"] == 2


async def test_registration_refusals(world: World) -> None:
    assert (await world.register()).status_code == 200
    other = await world.register("4030000005")
    problem(other, 409, "establishment_mismatch")
    taken = await world.client.put(
        f"{BASE}/establishments/{OTHER}/registration",
        content=json.dumps({"cr_number": CR}),
        headers=world.other_owner,
    )
    assert taken.status_code == 409
    for body in (b"", b"{", b"[]", b'{"cr_number": "12"}', b'{"cr_number": "4030000001", "x": 1}'):
        bad = await world.client.put(
            f"{BASE}/establishments/{EST}/registration", content=body, headers=world.owner
        )
        assert bad.status_code == 400, body
        assert bad.json()["code"] == "invalid_request"
    for headers in (world.hr, world.other_owner, world.auth("p-nobody")):
        refused = await world.register(headers=headers)
        problem(refused, 403, "establishment_not_permitted")
    assert (await world.register(headers=world.officer)).status_code == 200  # the same CR


async def test_who_may_read_a_standing(world: World) -> None:
    await world.register()
    vendor = world.auth(
        "c-v", kind="client", establishment=EST, delegated=(f"{EST}:compliance.read",)
    )
    for headers in (world.owner, world.hr, world.officer, vendor):
        assert (await world.standing(headers)).status_code == 200
        history = await world.client.get(f"{BASE}/establishments/{EST}/history", headers=headers)
        assert history.status_code == 200
    wrong_vendor = world.auth(
        "c-w", kind="client", establishment=OTHER, delegated=(f"{EST}:compliance.read",)
    )
    visas_only = world.auth("p-v", delegated=(f"{EST}:visas.apply",))
    for headers in (world.other_owner, wrong_vendor, visas_only, world.auth("p-nobody")):
        refused = await world.standing(headers)
        problem(refused, 403, "establishment_not_permitted")
        history = await world.client.get(f"{BASE}/establishments/{EST}/history", headers=headers)
        assert history.status_code == 403
    unknown = await world.client.get(
        f"{BASE}/establishments/{OTHER}/standing", headers=world.officer
    )
    problem(unknown, 404, "standing_not_found")


async def test_tokens(world: World) -> None:
    assert (await world.client.get(f"{BASE}/establishments/{EST}/standing")).status_code == 401
    forged = principal(RegistryHub(), "p-hr", audience="compliance")
    assert (await world.standing(forged)).status_code == 401
    elsewhere = principal(world.hub, "p-hr", audience="visas")
    assert (await world.standing(elsewhere)).status_code == 401
