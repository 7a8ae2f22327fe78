"""Run the sandbox e-mail provider: ``python -m adapters.sandbox.email_provider [--port 9602]``."""

from __future__ import annotations

from adapters.sandbox._messaging.cli import run
from adapters.sandbox.email_provider import CHANNEL

if __name__ == "__main__":
    run(CHANNEL, 9602)
