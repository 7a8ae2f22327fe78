"""Run the sandbox SMS provider: ``python -m adapters.sandbox.sms_provider [--port 9601]``."""

from __future__ import annotations

from adapters.sandbox._messaging.cli import run
from adapters.sandbox.sms_provider import CHANNEL

if __name__ == "__main__":
    run(CHANNEL, 9601)
