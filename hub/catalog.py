"""The API catalog: managed products and their OpenAPI 3.1 documents, assembled from contracts/.

A product's contract folder holds ``api.yaml`` (its operations) and the JSON Schemas they name;
the OpenAPI document is built from those alone, so the contract is the one source of truth.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from hub.config.model import ProductSpec
from hub.errors import NotFound

__all__ = ["catalog_entry", "openapi_document"]

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")
_DROP_KEYS = ("$schema", "$id")


def catalog_entry(product: ProductSpec) -> dict[str, Any]:
    """One product version as listed by ``/api/catalog``."""
    return {
        "product": product.id,
        "version": product.version,
        "title": product.title,
        "status": product.status,
        "description": product.description,
        "openapi": f"/api/catalog/{product.id}/v{product.version}/openapi.json"
        if product.contract
        else None,
    }


def _schema_name(file_name: str) -> str:
    stem = file_name.removesuffix(".json").removesuffix(".schema")
    return "".join(part.capitalize() for part in re.split(r"[-_.]", stem) if part)


def _load_schema(folder: Path, file_name: str, components: dict[str, Any]) -> dict[str, str]:
    name = _schema_name(file_name)
    if name not in components:
        schema_path = (folder / file_name).resolve()
        if folder.resolve() not in schema_path.parents:
            raise NotFound(f"schema {file_name!r} lies outside the contract folder")
        try:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NotFound(f"contract schema {file_name!r} cannot be read") from exc
        components[name] = {k: v for k, v in schema.items() if k not in _DROP_KEYS}
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(ref: dict[str, str]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


@functools.lru_cache(maxsize=64)
def _assemble(contracts_dir: Path, product: ProductSpec) -> str:
    if product.contract is None:
        raise NotFound(f"product {product.id} v{product.version} publishes no contract")
    folder = contracts_dir / product.contract
    try:
        api = yaml.safe_load((folder / "api.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise NotFound(f"the contract of {product.id} v{product.version} cannot be read") from exc
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for op in api.get("operations", []):
        path: str = op["path"]
        operation: dict[str, Any] = {
            "operationId": op.get("operation_id") or f"{op['method'].lower()}{path}",
            "summary": op.get("summary", ""),
            "tags": [product.id],
        }
        if op.get("description"):
            operation["description"] = op["description"]
        params = _PARAM.findall(path)
        if params:
            operation["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if op.get("request"):
            operation["requestBody"] = {
                "required": True,
                "content": _json_content(_load_schema(folder, op["request"], components)),
            }
        responses: dict[str, Any] = {}
        for code, schema_file in (op.get("responses") or {}).items():
            response: dict[str, Any] = {"description": str(code)}
            if schema_file:
                response["content"] = _json_content(_load_schema(folder, schema_file, components))
            responses[str(code)] = response
        responses.setdefault(
            "default",
            {
                "description": "A problem (RFC 9457)",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            },
        )
        operation["responses"] = responses
        paths.setdefault(path, {})[op["method"].lower()] = operation
    components["Problem"] = {
        "type": "object",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "request_id": {"type": "string"},
            "instance": {"type": "string"},
        },
    }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": api.get("title") or product.title,
            "version": str(product.version),
            "description": api.get("description") or product.description,
            "x-status": product.status,
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    return json.dumps(document, ensure_ascii=False)


def openapi_document(contracts_dir: Path, product: ProductSpec) -> dict[str, Any]:
    """The product's OpenAPI 3.1 document (a fresh copy each call)."""
    result: dict[str, Any] = json.loads(_assemble(contracts_dir, product))
    return result
