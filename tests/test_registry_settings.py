"""The settings of the occupations, certificates and compliance services: defaults and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import ConfigError
from services.certificates.settings import CertificateSettings
from services.compliance.settings import ComplianceSettings
from services.occupations.settings import OccupationSettings

SERVICES: list[tuple[Any, str, int]] = [
    (OccupationSettings, "OCCUPATIONS_", 9540),
    (CertificateSettings, "CERTIFICATES_", 9550),
    (ComplianceSettings, "COMPLIANCE_", 9560),
]


@pytest.mark.parametrize(("cls", "prefix", "port"), SERVICES)
def test_defaults(cls: Any, prefix: str, port: int) -> None:
    settings = cls.from_env({f"{prefix}BUS_DATABASE_URL": "sqlite+aiosqlite:///hub.db"})
    assert settings.port == port
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.issuer == "http://127.0.0.1:8080"


@pytest.mark.parametrize(("cls", "prefix", "port"), SERVICES)
def test_every_bad_value_is_listed(cls: Any, prefix: str, port: int) -> None:
    with pytest.raises(ConfigError) as info:
        cls.from_env({f"{prefix}PORT": "99999", f"{prefix}DATABASE_SCHEMA": "x"})
    issues = " ".join(info.value.issues)
    assert f"{prefix}PORT" in issues
    assert f"{prefix}DATABASE_SCHEMA" in issues
    assert "needs a bus" in issues


def test_demo_registrations_are_checked() -> None:
    env = {"COMPLIANCE_AMQP_URL": "amqp://x", "COMPLIANCE_DEMO_REGISTRATIONS": "est_a=123"}
    with pytest.raises(ConfigError):
        ComplianceSettings.from_env(env)
    env["COMPLIANCE_DEMO_REGISTRATIONS"] = "est_a=4030000001, est_b=4030000002"
    assert ComplianceSettings.from_env(env).demo_registrations == (
        ("est_a", "4030000001"),
        ("est_b", "4030000002"),
    )
