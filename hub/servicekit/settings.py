"""The settings every domain service has: one typed object, built once from ``<PREFIX>_*``.

A service reads only its own variables (never the hub's ``HUB_*``): where it serves, where its
own database is, where the hub is, its own client credentials at the hub, and the event bus it
publishes to and learns from. An unset database URL means an SQLite file in
``<PREFIX>_DATA_DIR``; an unset AMQP URL means the embedded database-backed bus on
``<PREFIX>_BUS_DATABASE_URL`` (the hub's database in ``hub dev``).

A service subclasses :class:`ServiceSettings`, names its ``prefix`` and database file, gives
its own defaults (port, audience, sweep interval) as field defaults, adds its own fields and
reads them in :meth:`ServiceSettings.own_settings` with the :class:`ServiceEnv` it is handed.
Every problem is reported at once, in one :class:`~hub.errors.ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Final, Self

from hub.errors import ConfigError

__all__ = ["ServiceEnv", "ServiceSettings"]

_ROOT: Final = Path(__file__).resolve().parent.parent.parent


class ServiceEnv:
    """Reads ``<PREFIX>_<NAME>`` variables and collects what is wrong with them."""

    def __init__(self, prefix: str, environ: Mapping[str, str]) -> None:
        self.prefix = prefix
        self._env = environ
        self.issues: list[str] = []

    def name(self, name: str) -> str:
        """The variable's full name: ``<PREFIX>_<NAME>``."""
        return f"{self.prefix}_{name}"

    def text(self, name: str, default: str = "") -> str:
        """The variable's value; ``default`` when unset or empty."""
        return self._env.get(self.name(name)) or default

    def optional(self, name: str) -> str | None:
        """The variable's value; ``None`` when unset or empty."""
        return self._env.get(self.name(name)) or None

    def flag(self, name: str) -> bool:
        """Whether the variable says yes (``1``, ``true``, ``yes``)."""
        return self.text(name).lower() in {"1", "true", "yes"}

    def number(self, name: str, default: float) -> float:
        """A number of zero or more; ``default`` when unset."""
        full = self.name(name)
        raw = self._env.get(full)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            self.issues.append(f"{full}: {raw!r} is not a number")
            return default
        if value < 0:
            self.issues.append(f"{full}: {raw!r} must not be negative")
        return value

    def whole(self, name: str, default: int, *, low: int, high: int, unit: str = "") -> int:
        """A whole number (of ``unit``) from ``low`` to ``high``; ``default`` when unset."""
        raw = self.text(name, str(default))
        value = int(raw) if raw.isdigit() else -1
        if not low <= value <= high:
            within = f"{low} to {high} {unit}".rstrip()
            self.issues.append(f"{self.name(name)}: {raw!r} is not {within}")
        return value if value > 0 else default

    def port(self, default: int) -> int:
        """The port the service listens on."""
        raw = self.text("PORT", str(default))
        port = int(raw) if raw.isdigit() else 0
        if not 0 < port < 65536:
            self.issues.append(f"{self.name('PORT')}: {raw!r} is not a port number")
        return port or default


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    """What every domain service is configured with at start-up."""

    #: The prefix of the service's variables (``VISAS`` for ``VISAS_PORT``...).
    prefix: ClassVar[str] = ""
    #: The SQLite file in ``data_dir`` when no database URL is set.
    database_file: ClassVar[str] = ""

    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path = _ROOT / "var"
    #: The service's own database: SQLite file by default, its own PostgreSQL database.
    database_url: str = ""
    #: PostgreSQL only: the schema the service's tables live in (its own, not the hub's).
    database_schema: str | None = None
    #: The hub's base URL: the gateway (registrar, payment and other routes) and its JWKS.
    hub_url: str = "http://127.0.0.1:8080"
    #: The issuer of internal tokens (the hub's HUB_ISSUER); defaults to ``hub_url``.
    hub_issuer: str = ""
    #: The audience internal tokens are minted for: the upstream id of the service.
    audience: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    #: RabbitMQ; unset: the embedded bus on ``bus_database_url``.
    amqp_url: str | None = None
    bus_database_url: str | None = None
    #: The hub's HUB_EVENTS_NAMESPACE: exchanges of one system share it.
    events_namespace: str = "hub"
    #: How often the service's sweep (lapses, expiries, reminders) runs.
    sweep_seconds: float = 60.0
    currency: str = "SAR"
    hub_timeout_seconds: float = 10.0
    #: Demo data (``hub dev``).
    demo: bool = False

    @property
    def issuer(self) -> str:
        return self.hub_issuer or self.hub_url.rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Build the settings from ``<PREFIX>_*`` variables (``os.environ`` when not given)."""
        env = ServiceEnv(cls.prefix, os.environ if environ is None else environ)
        defaults: dict[str, Any] = {f.name: f.default for f in fields(cls)}
        data_dir = Path(env.text("DATA_DIR") or _ROOT / "var").resolve()
        settings = cls(
            host=env.text("HOST", "127.0.0.1"),
            port=env.port(defaults["port"]),
            data_dir=data_dir,
            database_url=env.text(
                "DATABASE_URL", f"sqlite+aiosqlite:///{data_dir}/{cls.database_file}"
            ),
            database_schema=env.optional("DATABASE_SCHEMA"),
            hub_url=env.text("HUB_URL", "http://127.0.0.1:8080").rstrip("/"),
            hub_issuer=env.text("HUB_ISSUER").rstrip("/"),
            audience=env.text("AUDIENCE", defaults["audience"]),
            client_id=env.text("CLIENT_ID"),
            client_secret=env.text("CLIENT_SECRET"),
            amqp_url=env.optional("AMQP_URL"),
            bus_database_url=env.optional("BUS_DATABASE_URL"),
            events_namespace=env.text("EVENTS_NAMESPACE", "hub"),
            sweep_seconds=env.number("SWEEP_SECONDS", defaults["sweep_seconds"]),
            currency=env.text("CURRENCY", "SAR"),
            hub_timeout_seconds=env.number("HUB_TIMEOUT_SECONDS", 10.0),
            demo=env.flag("DEMO"),
            **cls.own_settings(env),
        )
        schema = settings.database_schema
        if schema and not settings.database_url.startswith("postgresql"):
            env.issues.append(
                f"{env.name('DATABASE_SCHEMA')}: only a PostgreSQL database has schemas"
            )
        if schema and not schema.isidentifier():
            env.issues.append(f"{env.name('DATABASE_SCHEMA')}: {schema!r} is not a name")
        if not settings.amqp_url and not settings.bus_database_url:
            env.issues.append(
                f"{env.name('BUS_DATABASE_URL')} or {env.name('AMQP_URL')}: the service needs a bus"
            )
        if env.issues:
            raise ConfigError(env.issues)
        return settings

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        """The service's own fields, read from ``env`` (none here)."""
        return {}
