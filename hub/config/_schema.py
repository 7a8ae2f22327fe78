"""Checks a document against its JSON Schema and phrases every violation for people."""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError, ValidationError  # type: ignore[import-untyped]

from hub.config._issues import Issue, JsonPath
from hub.errors import ConfigError

__all__ = ["load_validator", "schema_issues"]

_MAX_REASON = 240


def load_validator(schema_path: Path) -> Any:
    """A Draft 2020-12 validator for the schema file, cached until the file changes."""
    try:
        stat = schema_path.stat()
    except OSError as exc:
        raise ConfigError([f"{schema_path}: cannot read the schema: {exc.strerror}"]) from exc
    return _cached_validator(schema_path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _cached_validator(schema_path: Path, _mtime_ns: int, _size: int) -> Any:
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{schema_path}: cannot read the schema: {exc}"]) from exc
    except SchemaError as exc:
        raise ConfigError([f"{schema_path}: not a valid JSON Schema: {exc.message}"]) from exc
    return Draft202012Validator(schema)


def schema_issues(instance: Any, validator: Any, *, top_level: str = "section") -> list[Issue]:
    """Every violation of the schema, phrased for people and sorted in document order.

    ``top_level`` names the document's own keys in messages ("unknown section 'x'").
    """
    found: set[Issue] = set()
    for error in validator.iter_errors(instance):
        found.update(_explain(error, top_level))
    return sorted(found, key=Issue.sort_key)


def _explain(error: ValidationError, top_level: str) -> Iterator[Issue]:
    path: JsonPath = tuple(error.absolute_path)
    instance = error.instance
    keyword = error.validator
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        for key in instance:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            what = top_level if not path else "field"
            yield Issue(path=(*path, key), reason=_unknown_key(key, known, what))
    elif keyword == "required" and isinstance(instance, dict):
        for name in error.validator_value:
            if name not in instance:
                yield Issue(path=path, reason=f"missing required field {name!r}")
    elif keyword == "dependentRequired" and isinstance(instance, dict):
        for name, needed in error.validator_value.items():
            for other in needed:
                if name in instance and other not in instance:
                    yield Issue(path=path, reason=f"{name!r} requires {other!r} as well")
    elif keyword == "type":
        expected = error.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        yield Issue(path=path, reason=f"expected {names}, got {_describe(instance)}")
    elif "propertyNames" in error.relative_schema_path:
        yield Issue(path=path, reason=_short(f"key {error.message}"))
    else:
        yield Issue(path=path, reason=_short(error.message))


def _unknown_key(key: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown {what} {key!r} (did you mean {close[0]!r}?)"
    if what == "section":
        return f"unknown section {key!r} (expected one of: {', '.join(sorted(known))})"
    return f"unknown {what} {key!r}"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, str):
        return _short(f"string {value!r}", 80)
    if isinstance(value, int | float):
        return f"number {value!r}"
    return "array" if isinstance(value, list) else "object"


def _short(text: str, limit: int = _MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
