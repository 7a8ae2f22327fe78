"""Adapter plugins are found through the ``hub.adapters`` entry-point group, as installed.

A tiny third-party distribution (a module and its ``.dist-info`` with ``entry_points.txt``) is
put on the import path; the hub finds, validates and runs its adapter with no change to the
hub, its network replaced by ``httpx.MockTransport``. Configuration errors name exact paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.base import AdapterRateLimited, CallContext, quota_refused
from hub.adapters.plugins import available_plugins, clear_plugin_cache, load_plugin
from hub.adapters.registry import AdapterRegistry
from hub.config.loader import document_from_raw, load_directory
from hub.errors import AdapterUnavailable, ConfigError
from hub.settings import PROJECT_ROOT

PLUGIN = """
from dataclasses import dataclass
from adapters.base import Operation, call_extensions


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    word: str

    @classmethod
    def parse(cls, params):
        return cls(word=params["word"])


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong:
    echo: str


class Tiny:
    def __init__(self, config, http):
        self.config = config
        self.http = http

    async def ping(self, request, context):
        response = await self.http.get("/ping/" + request.word,
                                       extensions=call_extensions(PING, context))
        return Pong(echo=response.json()["echo"])

    async def health(self):
        return None

    async def aclose(self):
        return None


PING = Operation(name="ping", parse=Ping.parse, call=Tiny.ping, fields=("echo",))
Tiny.operations = {"ping": PING}
"""


@pytest.fixture
def tiny_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    info = site / "tiny_hub_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "tiny_hub_plugin.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-hub-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hub.adapters]\ntiny = tiny_hub_plugin:Tiny\n")
    contracts = tmp_path / "contracts" / "adapters" / "tiny"
    contracts.mkdir(parents=True)
    (contracts / "api.yaml").write_text(
        "title: Tiny\noperations:\n  - operation_id: ping\n    method: GET\n"
        "    path: /ping/{word}\n    responses:\n      '200': pong.schema.json\n"
    )
    (contracts / "pong.schema.json").write_text(
        json.dumps({"type": "object", "required": ["echo"], "properties": {"echo": {}}})
    )
    (tmp_path / "contracts" / "config").mkdir()
    monkeypatch.syspath_prepend(str(site))
    clear_plugin_cache()
    yield tmp_path
    clear_plugin_cache()


async def test_a_third_party_plugin_is_discovered_and_runs(tiny_plugin: Path) -> None:
    assert {"tiny", "civil_registry", "commercial_registry"} <= set(available_plugins())
    factory = load_plugin("tiny")
    assert set(factory.operations) == {"ping"}
    raw = {
        "adapters": [
            {
                "id": "tiny-system",
                "plugin": "tiny",
                "base_url": "http://tiny.test",
                "contract": "adapters/tiny",
            }
        ]
    }
    document = document_from_raw(
        raw,
        contracts_dir=tiny_plugin / "contracts",
        schema_path=PROJECT_ROOT / "contracts/config/hub-config.schema.json",
    )
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"echo": request.url.path.rsplit("/", 1)[1]})

    registry = AdapterRegistry(
        secrets={},
        contracts_dir=tiny_plugin / "contracts",
        observer=type("O", (), {"adapter_call": lambda *a: None})(),
        limiter=lambda: None,
        transport=lambda config: httpx.MockTransport(answer),
    )
    await registry.apply(document.adapters)
    try:
        adapter = registry.get("tiny-system").require()
        op = adapter.operations["ping"]
        pong = await op.call(adapter, op.parse({"word": "hello"}), CallContext(request_id="r1"))
        assert pong.echo == "hello"
        assert seen == ["/ping/hello"]
    finally:
        await registry.aclose()


def test_unknown_plugins_and_operations_are_refused_with_their_paths(tmp_path: Path) -> None:
    with pytest.raises(AdapterUnavailable, match="no adapter plugin 'nope'"):
        load_plugin("nope")
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "all.yaml").write_text(
        json.dumps(
            {
                "adapters": [
                    {
                        "id": "civil",
                        "plugin": "civil_registry",
                        "base_url": "http://x.test",
                        "contract": "adapters/civil-registry",
                        "timeouts": {"read": 9, "total": 3},
                    },
                    {
                        "id": "ghost",
                        "plugin": "nope",
                        "base_url": "ftp://x",
                        "contract": "adapters/none",
                    },
                ],
                "routes": [
                    {
                        "id": "a",
                        "path": "/a/{id}",
                        "adapter": {"name": "civil", "operation": "get_persn"},
                    },
                    {"id": "b", "path": "/b", "adapter": {"name": "missing", "operation": "x"}},
                    {
                        "id": "c",
                        "path": "/c",
                        "upstream": "u",
                        "adapter": {"name": "civil", "operation": "get_person"},
                    },
                ],
                "upstreams": [{"id": "u", "targets": [{"url": "http://u.test"}]}],
                "purposes": [
                    {
                        "id": "p",
                        "description": "d",
                        "principals": [{"kinds": ["client"]}],
                        "reads": [
                            {"adapter": "civil", "operation": "get_person", "fields": ["shoe_size"]}
                        ],
                    }
                ],
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_directory(folder)
    issues = "\n".join(caught.value.issues)
    for expected in (
        "$.adapters[0].timeouts: read (9s) must not exceed total (3s)",
        "$.adapters[1].plugin: no adapter plugin 'nope'",
        "$.adapters[1].base_url: 'ftp://x' is not an http(s)",
        "$.adapters[1].contract: 'contracts/adapters/none/api.yaml' does not exist",
        "$.routes[0].adapter.operation: 'get_persn' is not an operation of adapter 'civil'",
        "$.routes[1].adapter.name: 'missing' is not a defined adapter",
        "$.routes[2]: set exactly one of 'upstream', 'adapter' and 'payments'"
        " (upstream and adapter are set)",
        "$.purposes[0].reads[0].fields[0]: 'shoe_size' is not a field of civil.get_person",
    ):
        assert expected in issues, issues


def test_the_demo_policies_validate() -> None:
    document = load_directory(PROJECT_ROOT / "policies")
    assert {a.id for a in document.adapters} == {
        "civil-registry",
        "commercial-registry",
        "education-registry",
        "payment-provider",
        "sms-provider",
        "email-provider",
    }
    assert "visa-eligibility" in {p.id for p in document.purposes}
    assert document.adapters[0].credentials is not None
    assert document.adapters[0].credentials.secret == ""  # named, never inline


@pytest.mark.parametrize(
    ("header", "expected"), [("7", "7"), ("0", "1"), ("99999", "3600"), ("soon", "1"), (None, "1")]
)
def test_a_systems_own_429_carries_a_bounded_retry_after(header: str | None, expected: str) -> None:
    headers = {} if header is None else {"Retry-After": header}
    error = quota_refused("civil registry", httpx.Response(429, headers=headers))
    assert isinstance(error, AdapterRateLimited)
    assert (error.status, error.code) == (503, "adapter_rate_limited")
    assert error.headers == {"Retry-After": expected}
