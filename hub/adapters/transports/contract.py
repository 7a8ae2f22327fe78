"""Contracts: the request and response bodies of every adapter call, checked by JSON Schema.

An adapter's contract is a folder under ``contracts/`` (``contracts/adapters/<adapter>/``) with an
``api.yaml`` in the product-contract format: one entry per operation (``operation_id`` = the
operation's name), the schema file of its request body and one per expected response status.
An answer whose status the contract does not list (5xx aside: those are failures), whose body is
not JSON, or whose body breaks the schema is ``502 upstream_contract_violation``: logged with
the request id and the first schema error's location, never passed on. The body itself is not
logged (it may hold personal data).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from hub.errors import AdapterUnavailable, InvalidRequest, UpstreamContractViolation

__all__ = ["AdapterContract", "ContractTransport", "OperationContract"]

log = structlog.get_logger("hub.adapters.contract")


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationContract:
    """The schemas of one operation: its request body (if any) and each expected answer."""

    request: Any
    responses: Mapping[int, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterContract:
    """An adapter's operations and their compiled validators."""

    folder: str
    operations: Mapping[str, OperationContract]

    @classmethod
    def load(cls, folder: Path, *, label: str) -> AdapterContract:
        """Read ``folder/api.yaml`` and compile its schemas (validated at config load)."""
        try:
            data = yaml.safe_load((folder / "api.yaml").read_text(encoding="utf-8"))
            operations: dict[str, OperationContract] = {}
            for entry in data["operations"]:
                request = entry.get("request")
                operations[entry["operation_id"]] = OperationContract(
                    request=_validator(folder / request) if request else None,
                    responses={
                        int(status): _validator(folder / name)
                        for status, name in entry["responses"].items()
                    },
                )
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise AdapterUnavailable(f"the contract {label} cannot be read: {exc}") from exc
        return cls(folder=label, operations=operations)


def _validator(file: Path) -> Any:
    schema = json.loads(file.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _first_error(validator: Any, data: Any) -> str | None:
    error = next(iter(validator.iter_errors(data)), None)
    if error is None:
        return None
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    # The keyword and the place, never the message: it quotes the value, maybe personal data.
    return f"{where} fails the schema's {error.validator!r} rule"


class ContractTransport(httpx.AsyncBaseTransport):
    """Checks each call's bodies against the operation's contract (``hub_operation``)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, name: str, contract: AdapterContract
    ) -> None:
        self._inner = inner
        self._name = name
        self._contract = contract

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        operation = str(request.extensions.get("hub_operation", ""))
        spec = self._contract.operations.get(operation)
        if spec is None:
            raise InvalidRequest(
                f"{self._name}: operation {operation!r} is not in its contract"
                f" ({self._contract.folder})"
            )
        if spec.request is not None:
            problem = _problem(spec.request, request.content)
            if problem is not None:
                raise InvalidRequest(
                    f"{self._name}: the {operation} request is outside the contract: {problem}"
                )
        response = await self._inner.handle_async_request(request)
        validator = spec.responses.get(response.status_code)
        if validator is None:
            if response.status_code >= 500:
                return response  # a failure of the system, not of its contract
            problem = f"status {response.status_code} is not in the contract"
        else:
            problem = _problem(validator, response.content)
        if problem is not None:
            log.warning(
                "adapter.contract_violation",
                adapter=self._name,
                operation=operation,
                status=response.status_code,
                request_id=request.extensions.get("hub_request_id"),
                problem=problem,
            )
            raise UpstreamContractViolation(
                f"{self._name} answered {operation} outside its contract ({problem})"
            )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _problem(validator: Any, body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return "the body is not JSON"
    return _first_error(validator, data)
