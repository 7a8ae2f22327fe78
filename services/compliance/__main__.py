"""Run the compliance service: ``python -m services.compliance`` (``COMPLIANCE_*``)."""

from __future__ import annotations

import uvicorn

from services.compliance.app import create_app
from services.compliance.settings import ComplianceSettings

__all__ = ["main"]


def main() -> None:
    """Serve until interrupted."""
    settings = ComplianceSettings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
