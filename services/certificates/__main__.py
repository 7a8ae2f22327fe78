"""Run the certificates service: ``python -m services.certificates`` (``CERTIFICATES_*``)."""

from __future__ import annotations

import uvicorn

from services.certificates.app import create_app
from services.certificates.settings import CertificateSettings

__all__ = ["main"]


def main() -> None:
    """Serve until interrupted."""
    settings = CertificateSettings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
