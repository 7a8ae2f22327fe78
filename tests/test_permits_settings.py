"""The work permits service's settings: built once from ``PERMITS_*``, every problem at once."""

from __future__ import annotations

import pytest

from hub.errors import ConfigError
from services.work_permits.settings import PermitSettings

BUS = {"PERMITS_BUS_DATABASE_URL": "sqlite+aiosqlite:///hub.db"}


def test_defaults_and_overrides() -> None:
    settings = PermitSettings.from_env({**BUS, "PERMITS_DATA_DIR": "/srv/permits"})
    assert (settings.port, settings.audience, settings.reminder_days) == (9530, "permits", 30)
    assert settings.database_url.endswith("/work_permits.db")
    assert settings.issuer == "http://127.0.0.1:8080"
    tuned = PermitSettings.from_env(
        {**BUS, "PERMITS_PORT": "9631", "PERMITS_REMINDER_DAYS": "7",
         "PERMITS_HUB_ISSUER": "https://hub.example/", "PERMITS_CLIENT_SECRET": "s3cret"}
    )  # fmt: skip
    assert (tuned.port, tuned.reminder_days, tuned.issuer) == (9631, 7, "https://hub.example")
    assert "s3cret" not in repr(tuned)


def test_every_problem_is_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        PermitSettings.from_env(
            {"PERMITS_PORT": "x", "PERMITS_REMINDER_DAYS": "0", "PERMITS_SWEEP_SECONDS": "-1",
             "PERMITS_DATABASE_SCHEMA": "work_permits"}
        )  # fmt: skip
    text = str(caught.value)
    for name in (
        "PERMITS_PORT",
        "PERMITS_REMINDER_DAYS",
        "PERMITS_SWEEP_SECONDS",
        "PERMITS_DATABASE_SCHEMA",
        "PERMITS_BUS_DATABASE_URL or PERMITS_AMQP_URL",
    ):
        assert name in text, name
