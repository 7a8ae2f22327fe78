"""Checks of a product contract (``contracts/products/*/api.yaml``) that its schema cannot say."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from hub.config._issues import Issue, JsonPath, section_items
from hub.config.validate import template_problems

__all__ = ["operation_issues", "schema_file_problem"]


def schema_file_problem(file: Path) -> str | None:
    """What keeps ``file`` from being a usable Draft 2020-12 JSON Schema, if anything."""
    try:
        schema = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "does not exist"
    except (OSError, ValueError) as exc:
        return f"is not readable JSON: {exc}"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"is not a valid JSON Schema: {exc.message}"
    return None


def operation_issues(contract: Mapping[str, Any]) -> list[Issue]:
    """A product contract's operations: valid templates, unique ids and method + path pairs."""
    issues: list[Issue] = []
    ids: dict[str, int] = {}
    routes: dict[tuple[str, str], int] = {}
    for index, operation in section_items(contract, "operations"):
        at: JsonPath = ("operations", index)
        op_id, method = operation.get("operation_id"), operation.get("method")
        path = operation.get("path")
        if isinstance(op_id, str):
            if op_id in ids:
                issues.append(
                    Issue(
                        path=(*at, "operation_id"),
                        reason=f"duplicate operation_id {op_id!r}"
                        f" (first defined at $.operations[{ids[op_id]}])",
                    )
                )
            ids.setdefault(op_id, index)
        if isinstance(path, str):
            issues.extend(Issue(path=(*at, "path"), reason=p) for p in template_problems(path))
            if isinstance(method, str):
                key = (method, path)
                if key in routes:
                    issues.append(
                        Issue(
                            path=at,
                            reason=f"{method} {path} is already defined"
                            f" at $.operations[{routes[key]}]",
                        )
                    )
                routes.setdefault(key, index)
    return issues
