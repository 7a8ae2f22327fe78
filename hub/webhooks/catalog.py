"""Which event types may leave the hub as webhooks, and the scope a vendor needs for each.

Read from ``contracts/events/webhooks.yaml``: an event type not listed there is never sent to a
vendor, whatever it subscribes to; a listed one only to a client that holds its scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from hub.errors import ConfigError

__all__ = ["WebhookCatalog", "WebhookEventType"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEventType:
    type: str
    scope: str | None
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookCatalog:
    """The event types vendors may subscribe to."""

    types: dict[str, WebhookEventType]

    @classmethod
    def load(cls, contracts_dir: Path) -> WebhookCatalog:
        path = contracts_dir / "events" / "webhooks.yaml"
        if not path.exists():
            return cls(types={})
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            entries = raw.get("event_types", [])
            types = {
                str(entry["type"]): WebhookEventType(
                    type=str(entry["type"]),
                    scope=None if entry.get("scope") is None else str(entry["scope"]),
                    description=str(entry.get("description", "")),
                )
                for entry in entries
            }
        except (yaml.YAMLError, AttributeError, KeyError, TypeError) as exc:
            raise ConfigError([f"{path.name}: {exc}"]) from exc
        return cls(types=types)

    def allowed_for(self, scopes: frozenset[str] | tuple[str, ...]) -> list[WebhookEventType]:
        """The types a client holding ``scopes`` may receive."""
        return [t for t in self.types.values() if t.scope is None or t.scope in scopes]
