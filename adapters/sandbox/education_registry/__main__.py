"""Run the sandbox education registry: ``python -m adapters.sandbox.education_registry``."""

from __future__ import annotations

from adapters.sandbox._registrar.cli import run
from adapters.sandbox.education_registry.app import create_app

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (``--port`` is required; ``--help`` lists the options)."""
    run("education-registry", create_app, argv)


if __name__ == "__main__":
    main()
