"""Run the visa service: ``python -m services.visas`` (settings from ``VISAS_*`` variables)."""

from __future__ import annotations

import uvicorn

from services.visas.app import create_app
from services.visas.settings import VisaSettings

__all__ = ["main"]


def main() -> None:
    """Serve until interrupted."""
    settings = VisaSettings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
