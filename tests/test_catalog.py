"""The API catalog and the OpenAPI documents: products from the active version, contracts as source.

The hub runs in-process (``HubApp`` through Litestar's ``AsyncTestClient``), once per back-end
set for the whole module; the one test that publishes rolls back before it ends.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from jsonschema import Draft202012Validator
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.db.migrate import migrate
from hub.settings import PROJECT_ROOT, Settings
from tests.fixtures_db import create_temp_postgres_database
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies
from tests.upstreams import UpstreamServer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CONTRACT = PROJECT_ROOT / "contracts" / "products" / "echo" / "v1"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ECHO_DESCRIPTION = "The echo demo API, for the catalog tests."

PRODUCTS = [
    {
        "id": "echo",
        "version": 1,
        "title": "Echo demo API",
        "status": "active",
        "description": ECHO_DESCRIPTION,
        "contract": "products/echo/v1",
    },
    {"id": "registry", "version": 2, "title": "Registry lookups", "status": "beta"},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("echo").start()
    try:
        yield server
    finally:
        server.close()


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)],
)
async def client(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: UpstreamServer,
) -> AsyncIterator[httpx.AsyncClient]:
    tmp = tmp_path_factory.mktemp(f"catalog-{request.param}")
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "echo", "targets": [{"url": upstream.url}]}],
        routes=[
            {
                "id": "echo-api",
                "product": "echo",
                "version": 1,
                "prefix": "/api/echo/v1/",
                "upstream": "echo",
            }
        ],
        products=PRODUCTS,
    )
    if request.param == "embedded":
        async with _hub(tmp, policies, {}) as test_client:
            yield test_client
        return
    async with create_temp_postgres_database() as database_url:
        await migrate(database_url)
        env = {
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": request.getfixturevalue("redis_url"),
            "HUB_AMQP_URL": request.getfixturevalue("amqp_url"),
        }
        async with _hub(tmp, policies, env) as test_client:
            yield test_client


def _hub(tmp: Path, policies: Path, env: dict[str, str]) -> Any:
    settings = Settings.from_env(hub_env(tmp, policies, 8080, extra=env))
    return AsyncTestClient(app=HubApp(settings))  # type: ignore[arg-type]


def contract_schema(file_name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACT / file_name).read_text())
    return {k: v for k, v in schema.items() if k not in ("$schema", "$id")}


def resolve(document: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON pointer such as ``#/components/schemas/Item``."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), (ref, part)
        assert part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def assert_problem(response: httpx.Response, status: int, code: str, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["detail"]) == (status, code, detail)
    assert body["request_id"] == response.headers["x-request-id"]


# --- the catalog --------------------------------------------------------------------------------


async def test_the_catalog_lists_every_product_with_its_link(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/catalog")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "config_version": 1,
        "products": [
            {
                "product": "echo",
                "version": 1,
                "title": "Echo demo API",
                "status": "active",
                "description": ECHO_DESCRIPTION,
                "openapi": "/api/catalog/echo/v1/openapi.json",
            },
            {
                "product": "registry",
                "version": 2,
                "title": "Registry lookups",
                "status": "beta",
                "description": "",
                "openapi": None,
            },
        ],
    }
    for product in response.json()["products"]:
        if product["openapi"]:
            linked = await client.get(product["openapi"])
            assert linked.status_code == 200
            assert linked.json()["openapi"] == "3.1.0"


async def test_the_catalog_follows_the_active_version(client: httpx.AsyncClient) -> None:
    active = (await client.get("/admin/api/config/active", headers=AUTH)).json()
    document = copy.deepcopy(active["document"])
    document["products"].append(
        {
            "id": "echo",
            "version": 2,
            "title": "Echo, next",
            "status": "deprecated",
            "contract": "products/echo/v1",
        }
    )
    published = await client.post(
        "/admin/api/config/versions",
        json={"document": document, "based_on": active["version"]},
        headers=AUTH,
    )
    assert published.status_code == 201, published.text
    new = published.json()["version"]
    try:
        catalog = (await client.get("/api/catalog")).json()
        assert catalog["config_version"] == new
        assert [(p["product"], p["version"], p["status"]) for p in catalog["products"]] == [
            ("echo", 1, "active"),
            ("registry", 2, "beta"),
            ("echo", 2, "deprecated"),
        ]
        v2 = (await client.get("/api/catalog/echo/v2/openapi.json")).json()
        assert v2["info"]["version"] == "2"
        assert v2["info"]["x-status"] == "deprecated"
    finally:
        rolled_back = await client.post(
            f"/admin/api/config/versions/{active['version']}/activate",
            json={"based_on": new},
            headers=AUTH,
        )
        assert rolled_back.status_code == 200, rolled_back.text
    catalog = (await client.get("/api/catalog")).json()
    assert catalog["config_version"] == active["version"]
    assert len(catalog["products"]) == 2
    response = await client.get("/api/catalog/echo/v2/openapi.json")
    assert_problem(response, 404, "not_found", "no product 'echo' version 'v2' in the catalog")


# --- the product's OpenAPI document --------------------------------------------------------------


async def test_the_openapi_document_is_assembled_from_the_contract(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/catalog/echo/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    api = yaml.safe_load((CONTRACT / "api.yaml").read_text())

    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {
        "title": api["title"],
        "version": "1",
        "description": api["description"],
        "x-status": "active",
    }
    # Exactly the contract's operations, under their paths and methods.
    assert {(path, method) for path, item in doc["paths"].items() for method in item} == {
        (op["path"], op["method"].lower()) for op in api["operations"]
    }
    for op in api["operations"]:
        operation = doc["paths"][op["path"]][op["method"].lower()]
        assert operation["operationId"] == op["operation_id"]
        assert operation["summary"] == op["summary"]
        assert operation["tags"] == ["echo"]
        names = re.findall(r"{(\w+)}", op["path"])
        assert operation.get("parameters", []) == [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
        ]
        assert set(operation["responses"]) == {*op["responses"], "default"}
        problem = operation["responses"]["default"]["content"]["application/problem+json"]
        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
    create = doc["paths"]["/api/echo/v1/items"]["post"]
    assert create["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
    }
    get_item = doc["paths"]["/api/echo/v1/items/{id}"]["get"]
    assert get_item["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EchoResponse"
    }

    schemas = doc["components"]["schemas"]
    assert set(schemas) == {"EchoResponse", "Item", "Problem"}
    assert schemas["Item"] == contract_schema("item.schema.json")
    assert schemas["EchoResponse"] == contract_schema("echo-response.schema.json")
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert "$id" not in schema, name
    every_ref = list(refs(doc))
    assert every_ref
    for ref in every_ref:
        resolve(doc, ref)

    item = Draft202012Validator(schemas["Item"])
    assert item.is_valid({"name": "chair", "quantity": 2, "tags": ["office"]})
    assert not item.is_valid({"quantity": 2})


async def test_the_openapi_document_has_the_openapi_31_shape(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/catalog/echo/v1/openapi.json")).json()
    assert set(doc) <= {"openapi", "info", "paths", "components", "servers", "tags", "webhooks"}
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert isinstance(doc["info"]["title"], str)
    assert isinstance(doc["info"]["version"], str)
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        assert set(item) <= methods
        for operation in item.values():
            assert operation["responses"]
            for code, response in operation["responses"].items():
                assert code == "default" or re.fullmatch(r"[1-5]\d\d", code)
                assert isinstance(response["description"], str)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


NOT_IN_CATALOG = [
    ("/api/catalog/nope/v1/openapi.json", "no product 'nope' version 'v1' in the catalog"),
    ("/api/catalog/echo/v9/openapi.json", "no product 'echo' version 'v9' in the catalog"),
    ("/api/catalog/echo/vx/openapi.json", "no product 'echo' version 'vx' in the catalog"),
    ("/api/catalog/registry/v2/openapi.json", "product registry v2 publishes no contract"),
]


async def test_unknown_products_and_versions_are_404_problems(
    client: httpx.AsyncClient,
) -> None:
    for path, detail in NOT_IN_CATALOG:
        response = await client.get(path)
        assert_problem(response, 404, "not_found", detail)
        assert response.json()["instance"] == path
    response = await client.get("/api/catalog/echo/v1/other.json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- the hub's own API documentation --------------------------------------------------------------


async def test_schema_documents_the_hubs_own_endpoints(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert "json" in response.headers["content-type"]
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "The hub"
    assert {
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/catalog",
        "/api/catalog/{product}/{version}/openapi.json",
        "/admin/api/config/versions",
        "/admin/api/config/versions/{version}",
        "/admin/api/config/versions/{version}/activate",
        "/admin/api/config/active",
        "/admin/api/config/validate",
    } <= set(doc["paths"])
    assert set(doc["paths"]["/admin/api/config/versions"]) == {"get", "post"}
    for ref in refs(doc):
        resolve(doc, ref)
    page = await client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


async def test_proxied_routes_never_shadow_the_catalog(client: httpx.AsyncClient) -> None:
    # /api/echo/v1/ is routed to the upstream; /api/catalog stays the hub's own.
    proxied = await client.get("/api/echo/v1/items/7")
    assert proxied.status_code == 200
    assert proxied.json()["server"] == "echo"
    assert (await client.get("/api/catalog")).json()["config_version"] >= 1
