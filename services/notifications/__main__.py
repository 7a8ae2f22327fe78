"""Run the notification service: ``python -m services.notifications`` (``NOTIFICATIONS_*``)."""

from __future__ import annotations

import uvicorn

from services.notifications.app import create_app
from services.notifications.settings import NotificationSettings

__all__ = ["main"]


def main() -> None:
    """Serve until interrupted."""
    settings = NotificationSettings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
