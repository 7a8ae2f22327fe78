"""Run the sandbox commercial registry: ``python -m adapters.sandbox.commercial_registry``."""

from __future__ import annotations

from adapters.sandbox._registrar.cli import run
from adapters.sandbox.commercial_registry.app import create_app

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    run("commercial-registry", create_app, argv)


if __name__ == "__main__":
    main()
