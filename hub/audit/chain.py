"""The hash chain of the registrar audit log, as pure functions.

Each entry's ``hash`` is SHA-256 over the canonical JSON (sorted keys, compact, UTF-8) of every
column but ``hash`` itself, ``seq`` and ``prev_hash`` included; ``prev_hash`` is the previous
entry's hash (:data:`GENESIS` for the first). So changing any value of an entry breaks its own
hash, and removing, inserting or moving an entry breaks the link of the one after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["GENESIS", "AuditDraft", "EntryKind", "canonical", "entry_hash"]

GENESIS = "0" * 64

EntryKind = Literal["read", "restrict", "release"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditDraft:
    """An entry before it is chained: everything but ``seq``, ``prev_hash`` and ``hash``."""

    kind: EntryKind
    at: datetime
    actor: str
    actor_kind: str
    client_id: str | None = None
    on_behalf_of: str | None = None
    adapter: str | None = None
    operation: str | None = None
    record_kind: str | None = None
    record_ref: str | None = None
    person_ref: str | None = None
    purpose: str | None = None
    fields: tuple[str, ...] = field(default_factory=tuple)
    outcome: str | None = None
    request_id: str | None = None
    config_version: int | None = None
    target_seq: int | None = None
    embargo_until: datetime | None = None
    reason: str | None = None

    def row(self, *, seq: int, prev_hash: str) -> dict[str, Any]:
        """The row to insert, its hash computed."""
        values: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["fields"] = sorted(self.fields)
        values["seq"] = seq
        values["prev_hash"] = prev_hash
        values["hash"] = entry_hash(values)
        return values


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, tuple):
        return list(value)
    return value


def canonical(values: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: every column but ``hash``, as canonical JSON."""
    content = {name: _plain(value) for name, value in values.items() if name != "hash"}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an entry's canonical content, its ``prev_hash`` included."""
    return hashlib.sha256(canonical(values)).hexdigest()
