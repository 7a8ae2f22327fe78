"""Run the contracts service: ``python -m services.contracts`` (settings: ``CONTRACTS_*``)."""

from __future__ import annotations

import uvicorn

from services.contracts.app import create_app
from services.contracts.settings import ContractSettings

__all__ = ["main"]


def main() -> None:
    """Serve until interrupted."""
    settings = ContractSettings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
