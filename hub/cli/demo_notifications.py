"""Demo wiring of the notification service in ``hub dev``: its client, sandboxes, variables.

- The notification service calls the hub's SMS and e-mail adapter routes with client
  credentials of its own (scope ``notifications.send``, which nobody else holds).
- The sandbox SMS (9601) and e-mail (9602) providers get keys and callback secrets made for
  this run (unless ``HUB_ADAPTER_SECRET_*`` named others), and call their receipts back to
  the hub's ``/api/callbacks/v1/<adapter>``.

The client's secret is made once and kept in ``HUB_DATA_DIR/demo-notifications.json`` (0600).
The hub never imports the service: ``hub dev`` starts it as a process with ``NOTIFICATIONS_*``
variables (:func:`notification_service_environment`).
"""

from __future__ import annotations

import secrets
from typing import Final

from hub.cli.demo_services import demo_data, service_environment
from hub.settings import Settings

__all__ = [
    "NOTIFICATION_SERVICE_SCOPES",
    "ensure_demo_notifications",
    "notification_lines",
    "notification_service_environment",
    "notify_sandbox_args",
]

_FILE: Final = "demo-notifications.json"
#: What the notification service's own client may do at the hub.
NOTIFICATION_SERVICE_SCOPES: Final = ("notifications.send",)


async def ensure_demo_notifications(settings: Settings) -> dict[str, str]:
    """The notification service's client credentials (made once)."""
    async with demo_data(settings, _FILE) as demo:
        await demo.client(
            name="Notification service",
            owner="notifications",
            scopes=NOTIFICATION_SERVICE_SCOPES,
        )
    return demo.credentials


def notify_sandbox_args(
    kind: str, port: int, hub_url: str, secrets_by_name: dict[str, str]
) -> list[str]:
    """The command line of the sandbox ``sms`` or ``email`` provider, keys made for this run."""
    key = secrets_by_name.setdefault(f"{kind}_provider_key", secrets.token_urlsafe(16))
    callback = secrets_by_name.setdefault(f"{kind}_callback_secret", secrets.token_urlsafe(24))
    return [
        *("--port", str(port), f"--api-key={key}", f"--callback-secret={callback}"),
        f"--callback-url={hub_url}/api/callbacks/v1/{kind}-provider",
    ]


def notification_service_environment(
    settings: Settings, credentials: dict[str, str], *, port: int, hub_url: str
) -> dict[str, str]:
    """The ``NOTIFICATIONS_*`` variables of the service next to this hub (its own database)."""
    client = (credentials["client_id"], credentials["client_secret"])
    return service_environment(
        "NOTIFICATIONS_", settings, port=port, hub_url=hub_url, client=client
    )


def notification_lines(base: str, *, port: int, sms_port: int, email_port: int) -> list[str]:
    """What ``hub dev`` prints about notifications."""
    return [
        "",
        f'Notifications (services/notifications, port {port}; README "The notification service"):',
        f"  inbox          {base}/api/notifications/v1/me/inbox  (signed in, or an app's token)",
        f"  preferences    PUT {base}/api/notifications/v1/me/preferences"
        ' {"channels": ["sms", "email"], "language": "ar", "phone": "+966500000123"}',
        f"  SMS sandbox    http://127.0.0.1:{sms_port}/_sandbox/messages  (faults: POST"
        " /_sandbox/faults)",
        f"  e-mail sandbox http://127.0.0.1:{email_port}/_sandbox/messages",
    ]
