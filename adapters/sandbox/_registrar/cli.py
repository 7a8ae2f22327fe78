"""The command line every sandbox registrar shares: ``python -m adapters.sandbox.<name> ...``."""

from __future__ import annotations

from collections.abc import Callable

from litestar import Litestar

from adapters.sandbox._control.cli import arguments, serve
from adapters.sandbox._registrar.server import RegistrarConfig

__all__ = ["run"]


def run(
    name: str, build: Callable[[RegistrarConfig, int], Litestar], argv: list[str] | None
) -> None:
    """Parse the command line, build the app and serve until interrupted."""
    parser = arguments(
        f"The sandbox {name.replace('-', ' ')}",
        api_key_help="the X-Registry-Key clients must send (none: open)",
    )
    parser.add_argument("--seed", type=int, default=2026, help="synthetic data and fault draws")
    parser.add_argument("--population", type=int, default=100_000, help="synthetic records")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every answer")
    parser.add_argument("--quota", type=int, default=0, help="requests per second (0: none)")
    parser.add_argument("--quota-burst", type=int, default=0)
    args = parser.parse_args(argv)
    config = RegistrarConfig(
        name=name,
        api_key=args.api_key,
        seed=args.seed,
        latency_ms=args.latency_ms,
        quota_rate=args.quota,
        quota_burst=args.quota_burst,
    )
    serve(build(config, args.population), args)
