"""Run the occupations service: ``python -m services.occupations`` (``OCCUPATIONS_*``)."""

from __future__ import annotations

import uvicorn

from services.occupations.app import create_app
from services.occupations.settings import OccupationSettings

__all__ = ["main"]


def main() -> None:
    """Serve until interrupted."""
    settings = OccupationSettings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
