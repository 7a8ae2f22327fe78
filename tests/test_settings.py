"""Settings come from HUB_* variables only, and bad values are refused with the variable's name."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from hub.errors import ConfigError
from hub.settings import Settings


def test_defaults_are_the_embedded_back_ends() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.embedded_database
    assert settings.redis_url is None
    assert settings.amqp_url is None
    assert settings.replicas == 1
    assert (settings.subscription_cache_seconds, settings.usage_flush_seconds) == (5.0, 1.0)


def test_variables_override_defaults() -> None:
    settings = Settings.from_env(
        {
            "HUB_HOST": "0.0.0.0",
            "HUB_PORT": "9000",
            "HUB_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/hub",
            "HUB_REDIS_URL": "redis://127.0.0.1:6379/0",
            "HUB_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
            "HUB_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
            "HUB_LOG_JSON": "false",
            "HUB_REPLICAS": "3",
        }
    )
    assert settings.port == 9000
    assert settings.replicas == 3
    assert not settings.embedded_database
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.1/32"),
    )
    assert settings.log_json is False


def test_the_admin_token_is_kept_only_as_its_digest() -> None:
    settings = Settings.from_env({"HUB_ADMIN_TOKEN": "s3cret"})
    assert settings.admin_token_sha256 == hashlib.sha256(b"s3cret").hexdigest()
    assert "s3cret" not in repr(settings)


def test_the_sample_and_shadow_settings() -> None:
    defaults = Settings.from_env({})
    assert (defaults.sample_size, defaults.sample_max_age_seconds, defaults.sample_rate) == (
        10_000,
        3600.0,
        0.1,
    )
    assert (defaults.sample_key, defaults.shadow_queue_size) == (None, 10_000)
    assert defaults.shadow_max_seconds == 7 * 24 * 3600
    settings = Settings.from_env(
        {
            "HUB_SAMPLE_SIZE": "50",
            "HUB_SAMPLE_MAX_AGE_SECONDS": "600",
            "HUB_SAMPLE_RATE": "1",
            "HUB_SAMPLE_KEY": "a-cluster-secret-of-32-characters",
            "HUB_SHADOW_QUEUE_SIZE": "7",
            "HUB_SHADOW_MAX_SECONDS": "3600",
        }
    )
    assert (settings.sample_size, settings.sample_max_age_seconds, settings.sample_rate) == (
        50,
        600.0,
        1.0,
    )
    assert settings.sample_key == b"a-cluster-secret-of-32-characters"
    assert "a-cluster-secret" not in repr(settings)
    assert (settings.shadow_queue_size, settings.shadow_max_seconds) == (7, 3600)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HUB_SAMPLE_RATE": "2"}, "HUB_SAMPLE_RATE: must be between 0 and 1"),
        ({"HUB_SAMPLE_SIZE": "-1"}, "HUB_SAMPLE_SIZE: must be 0 (off) or more"),
        ({"HUB_SAMPLE_MAX_AGE_SECONDS": "0"}, "HUB_SAMPLE_MAX_AGE_SECONDS: must be positive"),
        ({"HUB_SAMPLE_KEY": "short"}, "HUB_SAMPLE_KEY: must be at least 16 characters"),
        ({"HUB_SHADOW_QUEUE_SIZE": "0"}, "HUB_SHADOW_QUEUE_SIZE: must be at least 1"),
        ({"HUB_SHADOW_MAX_SECONDS": "0"}, "HUB_SHADOW_MAX_SECONDS: must be at least 1"),
        ({"HUB_PORT": "eighty"}, "HUB_PORT: 'eighty' is not an integer"),
        ({"HUB_PORT": "70000"}, "HUB_PORT: 70000 is not a TCP port"),
        ({"HUB_LOG_JSON": "maybe"}, "HUB_LOG_JSON: 'maybe' is not a boolean"),
        ({"HUB_REPLICAS": "0"}, "HUB_REPLICAS: must be at least 1"),
        (
            {"HUB_TRUSTED_PROXIES": "10.0.0.0/33"},
            "HUB_TRUSTED_PROXIES: '10.0.0.0/33' is not an IP address or network",
        ),
        (
            {"HUB_REDIS_URL": "http://x"},
            "HUB_REDIS_URL: must start with redis://, rediss:// or unix://",
        ),
        (
            {"HUB_DATABASE_URL": "mysql://x"},
            "HUB_DATABASE_URL: must start with sqlite+aiosqlite:// or postgresql+asyncpg://",
        ),
        (
            {"HUB_SUBSCRIPTION_CACHE_SECONDS": "-1"},
            "HUB_SUBSCRIPTION_CACHE_SECONDS: must be between 0 and 300",
        ),
        ({"HUB_USAGE_FLUSH_SECONDS": "0"}, "HUB_USAGE_FLUSH_SECONDS: must be between 0.05 and 60"),
        ({"HUB_USAGE_FLUSH_SECONDS": "soon"}, "HUB_USAGE_FLUSH_SECONDS: 'soon' is not a number"),
    ],
)
def test_bad_values_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert message in caught.value.issues
