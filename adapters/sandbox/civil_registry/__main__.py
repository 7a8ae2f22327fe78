"""Run the sandbox civil registry: ``python -m adapters.sandbox.civil_registry``."""

from __future__ import annotations

from adapters.sandbox._registrar.cli import run
from adapters.sandbox.civil_registry.app import create_app

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    run("civil-registry", create_app, argv)


if __name__ == "__main__":
    main()
