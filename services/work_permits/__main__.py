"""Run the work permits service: ``python -m services.work_permits`` (``PERMITS_*`` settings)."""

from __future__ import annotations

import uvicorn

from services.work_permits.app import create_app
from services.work_permits.settings import PermitSettings

__all__ = ["main"]


def main() -> None:
    """Serve until interrupted."""
    settings = PermitSettings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
