"""The hub's settings: one typed object, built once from ``HUB_*`` environment variables.

Nothing else in the hub reads ``os.environ``. An unset back-end URL means the embedded back-end:
SQLite for the database, in-process for rate limits, config fan-out and events.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from hub.errors import ConfigError

__all__ = ["PROJECT_ROOT", "Settings", "child_environment"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError([f"{name}: {raw!r} is not an integer"]) from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError([f"{name}: {raw!r} is not a number"]) from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError([f"{name}: {raw!r} is not a boolean"])


def _networks(env: Mapping[str, str], name: str) -> tuple[_Network, ...]:
    raw = env.get(name, "")
    nets: list[_Network] = []
    for item in raw.split(","):
        part = item.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError([f"{name}: {part!r} is not an IP address or network"]) from None
    return tuple(nets)


def _key32(env: Mapping[str, str], name: str) -> bytes | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        raise ConfigError([f"{name}: not base64"]) from None
    if len(key) != 32:
        raise ConfigError([f"{name}: must be 32 bytes in base64 (openssl rand -base64 32)"])
    return key


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw).resolve() if raw else default


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the hub is configured with at start-up."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # How many hub replicas share the limits: a replica that loses Redis allows limit/replicas.
    replicas: int = 1
    environment: str = "development"
    database_url: str = ""
    redis_url: str | None = None
    amqp_url: str | None = None
    policies_dir: Path = PROJECT_ROOT / "policies"
    contracts_dir: Path = PROJECT_ROOT / "contracts"
    data_dir: Path = PROJECT_ROOT / "var"
    trusted_proxies: tuple[_Network, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    max_url_length: int = 4096
    log_level: str = "info"
    log_json: bool = True
    access_log: bool = True
    shutdown_grace_seconds: float = 20.0
    config_poll_seconds: float = 5.0
    config_channel: str = "hub:config"
    issuer: str = ""
    audience: str = "hub"
    access_token_seconds: int = 300
    internal_token_seconds: int = 60
    key_publish_seconds: int = 300
    refresh_token_seconds: int = 30 * 24 * 3600
    auth_code_seconds: int = 60
    session_idle_seconds: int = 30 * 60
    session_max_seconds: int = 12 * 3600
    session_cache_seconds: float = 1.0
    affiliation_cache_seconds: float = 10.0
    session_cookie_secure: bool = True
    subscription_cache_seconds: float = 5.0
    usage_flush_seconds: float = 1.0
    national_idp_issuer: str | None = None
    national_idp_client_id: str | None = None
    national_idp_client_secret: str | None = field(default=None, repr=False)
    admin_token_sha256: str | None = field(default=None, repr=False)
    # The request sample (dry-run) and shadow mode.
    sample_size: int = 10_000
    sample_max_age_seconds: float = 3600.0
    sample_rate: float = 0.1
    sample_key: bytes | None = field(default=None, repr=False)
    shadow_queue_size: int = 10_000
    shadow_max_seconds: int = 7 * 24 * 3600
    # Adapter secrets by name (HUB_ADAPTER_SECRET_<NAME>): the policy documents name them only.
    adapter_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    audit_timeout_seconds: float = 2.0
    # Events and vendor webhooks.
    outbox_poll_seconds: float = 0.5
    # Prefix of the exchanges and the hub's queues on RabbitMQ (clusters sharing a vhost).
    events_namespace: str = "hub"
    webhook_key: bytes | None = field(default=None, repr=False)
    webhook_max_attempts: int = 8
    webhook_retry_seconds: float = 5.0
    webhook_timeout_seconds: float = 10.0

    @property
    def embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from ``HUB_*`` variables (``os.environ`` when not given)."""
        env = os.environ if environ is None else environ
        data_dir = _path(env, "HUB_DATA_DIR", PROJECT_ROOT / "var")
        admin_token = env.get("HUB_ADMIN_TOKEN") or None
        settings = cls(
            host=env.get("HUB_HOST", "127.0.0.1"),
            port=_int(env, "HUB_PORT", 8080),
            workers=_int(env, "HUB_WORKERS", 1),
            replicas=_int(env, "HUB_REPLICAS", 1),
            environment=env.get("HUB_ENV", "development"),
            database_url=env.get("HUB_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir}/hub.db",
            redis_url=env.get("HUB_REDIS_URL") or None,
            amqp_url=env.get("HUB_AMQP_URL") or None,
            policies_dir=_path(env, "HUB_POLICIES_DIR", PROJECT_ROOT / "policies"),
            contracts_dir=_path(env, "HUB_CONTRACTS_DIR", PROJECT_ROOT / "contracts"),
            data_dir=data_dir,
            trusted_proxies=_networks(env, "HUB_TRUSTED_PROXIES"),
            max_body_bytes=_int(env, "HUB_MAX_BODY_BYTES", 8 * 1024 * 1024),
            max_header_bytes=_int(env, "HUB_MAX_HEADER_BYTES", 16 * 1024),
            max_url_length=_int(env, "HUB_MAX_URL_LENGTH", 4096),
            log_level=env.get("HUB_LOG_LEVEL", "info").lower(),
            log_json=_bool(env, "HUB_LOG_JSON", True),
            access_log=_bool(env, "HUB_ACCESS_LOG", True),
            shutdown_grace_seconds=_float(env, "HUB_SHUTDOWN_GRACE_SECONDS", 20.0),
            config_poll_seconds=_float(env, "HUB_CONFIG_POLL_SECONDS", 5.0),
            # Redis pub/sub ignores the database number: hub clusters sharing one Redis need
            # their own channel.
            config_channel=env.get("HUB_CONFIG_CHANNEL") or "hub:config",
            issuer=(
                env.get("HUB_ISSUER")
                or f"http://{env.get('HUB_HOST', '127.0.0.1')}:{env.get('HUB_PORT', '8080')}"
            ).rstrip("/"),
            audience=env.get("HUB_AUDIENCE") or "hub",
            access_token_seconds=_int(env, "HUB_ACCESS_TOKEN_SECONDS", 300),
            internal_token_seconds=_int(env, "HUB_INTERNAL_TOKEN_SECONDS", 60),
            key_publish_seconds=_int(env, "HUB_KEY_PUBLISH_SECONDS", 300),
            refresh_token_seconds=_int(env, "HUB_REFRESH_TOKEN_SECONDS", 30 * 24 * 3600),
            auth_code_seconds=_int(env, "HUB_AUTH_CODE_SECONDS", 60),
            session_idle_seconds=_int(env, "HUB_SESSION_IDLE_SECONDS", 30 * 60),
            session_max_seconds=_int(env, "HUB_SESSION_MAX_SECONDS", 12 * 3600),
            session_cache_seconds=_float(env, "HUB_SESSION_CACHE_SECONDS", 1.0),
            affiliation_cache_seconds=_float(env, "HUB_AFFILIATION_CACHE_SECONDS", 10.0),
            # Secure cookies are never sent over plain http: off only for a local http issuer.
            session_cookie_secure=_bool(
                env,
                "HUB_SESSION_COOKIE_SECURE",
                not (env.get("HUB_ISSUER") or "http://").startswith("http://"),
            ),
            subscription_cache_seconds=_float(env, "HUB_SUBSCRIPTION_CACHE_SECONDS", 5.0),
            usage_flush_seconds=_float(env, "HUB_USAGE_FLUSH_SECONDS", 1.0),
            national_idp_issuer=(env.get("HUB_NATIONAL_IDP_ISSUER") or "").rstrip("/") or None,
            national_idp_client_id=env.get("HUB_NATIONAL_IDP_CLIENT_ID") or None,
            national_idp_client_secret=env.get("HUB_NATIONAL_IDP_CLIENT_SECRET") or None,
            # The admin token is kept only as its digest; the clear value is dropped here.
            admin_token_sha256=(
                hashlib.sha256(admin_token.encode()).hexdigest() if admin_token else None
            ),
            sample_size=_int(env, "HUB_SAMPLE_SIZE", 10_000),
            sample_max_age_seconds=_float(env, "HUB_SAMPLE_MAX_AGE_SECONDS", 3600.0),
            sample_rate=_float(env, "HUB_SAMPLE_RATE", 0.1),
            # The pseudonymisation key of the cluster; unset: a random key per process.
            sample_key=(env.get("HUB_SAMPLE_KEY") or "").encode() or None,
            shadow_queue_size=_int(env, "HUB_SHADOW_QUEUE_SIZE", 10_000),
            shadow_max_seconds=_int(env, "HUB_SHADOW_MAX_SECONDS", 7 * 24 * 3600),
            adapter_secrets=cls._adapter_secrets(env),
            audit_timeout_seconds=_float(env, "HUB_AUDIT_TIMEOUT_SECONDS", 2.0),
            outbox_poll_seconds=_float(env, "HUB_OUTBOX_POLL_SECONDS", 0.5),
            events_namespace=env.get("HUB_EVENTS_NAMESPACE") or "hub",
            webhook_key=_key32(env, "HUB_WEBHOOK_KEY"),
            webhook_max_attempts=_int(env, "HUB_WEBHOOK_MAX_ATTEMPTS", 8),
            webhook_retry_seconds=_float(env, "HUB_WEBHOOK_RETRY_SECONDS", 5.0),
            webhook_timeout_seconds=_float(env, "HUB_WEBHOOK_TIMEOUT_SECONDS", 10.0),
        )
        settings.check()
        return settings

    @staticmethod
    def _adapter_secrets(env: Mapping[str, str]) -> dict[str, str]:
        """``HUB_ADAPTER_SECRET_CIVIL_KEY=...`` is the secret named ``civil_key``."""
        prefix = "HUB_ADAPTER_SECRET_"
        return {
            name.removeprefix(prefix).lower(): value
            for name, value in env.items()
            if name.startswith(prefix) and len(name) > len(prefix) and value
        }

    def check(self) -> None:
        """Refuse settings that cannot work, naming the variable."""
        problems: list[str] = []
        if not 0 < self.port < 65536:
            problems.append(f"HUB_PORT: {self.port} is not a TCP port")
        if self.workers < 1:
            problems.append("HUB_WORKERS: must be at least 1")
        if self.replicas < 1:
            problems.append("HUB_REPLICAS: must be at least 1")
        for name in ("max_body_bytes", "max_header_bytes", "max_url_length"):
            if getattr(self, name) <= 0:
                problems.append(f"HUB_{name.upper()}: must be positive")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("HUB_REDIS_URL: must start with redis://, rediss:// or unix://")
        if self.amqp_url and not self.amqp_url.startswith(("amqp://", "amqps://")):
            problems.append("HUB_AMQP_URL: must start with amqp:// or amqps://")
        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            problems.append(
                "HUB_DATABASE_URL: must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        for name in (
            "refresh_token_seconds",
            "auth_code_seconds",
            "session_idle_seconds",
            "session_max_seconds",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"HUB_{name.upper()}: must be positive")
        if self.webhook_max_attempts < 1:
            problems.append("HUB_WEBHOOK_MAX_ATTEMPTS: must be at least 1")
        for name in ("webhook_retry_seconds", "webhook_timeout_seconds", "outbox_poll_seconds"):
            if getattr(self, name) <= 0:
                problems.append(f"HUB_{name.upper()}: must be positive")
        if not 0 < self.audit_timeout_seconds <= 60:
            problems.append("HUB_AUDIT_TIMEOUT_SECONDS: must be above 0 and at most 60")
        if not 0 <= self.session_cache_seconds <= 60:
            problems.append("HUB_SESSION_CACHE_SECONDS: must be between 0 and 60")
        if not 0 <= self.affiliation_cache_seconds <= 300:
            problems.append("HUB_AFFILIATION_CACHE_SECONDS: must be between 0 and 300")
        if self.sample_size < 0:
            problems.append("HUB_SAMPLE_SIZE: must be 0 (off) or more")
        if self.sample_max_age_seconds <= 0:
            problems.append("HUB_SAMPLE_MAX_AGE_SECONDS: must be positive")
        if not 0 <= self.sample_rate <= 1:
            problems.append("HUB_SAMPLE_RATE: must be between 0 and 1")
        if self.sample_key is not None and len(self.sample_key) < 16:
            problems.append("HUB_SAMPLE_KEY: must be at least 16 characters")
        if self.shadow_queue_size < 1:
            problems.append("HUB_SHADOW_QUEUE_SIZE: must be at least 1")
        if self.shadow_max_seconds < 1:
            problems.append("HUB_SHADOW_MAX_SECONDS: must be at least 1")
        if not 0 <= self.subscription_cache_seconds <= 300:
            problems.append("HUB_SUBSCRIPTION_CACHE_SECONDS: must be between 0 and 300")
        if not 0.05 <= self.usage_flush_seconds <= 60:
            problems.append("HUB_USAGE_FLUSH_SECONDS: must be between 0.05 and 60")
        if self.session_idle_seconds > self.session_max_seconds:
            problems.append("HUB_SESSION_IDLE_SECONDS: must not exceed HUB_SESSION_MAX_SECONDS")
        federation = (
            self.national_idp_issuer,
            self.national_idp_client_id,
            self.national_idp_client_secret,
        )
        if any(federation) and not all(federation):
            problems.append(
                "HUB_NATIONAL_IDP_ISSUER, _CLIENT_ID and _CLIENT_SECRET: set all three or none"
            )
        if problems:
            raise ConfigError(problems)

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (used by the CLI and tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a process the hub starts (``hub dev``): this one's, plus ``extra``."""
    return {**os.environ, **extra}
