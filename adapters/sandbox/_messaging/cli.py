"""The command line of a sandbox notification provider (``python -m adapters.sandbox.<name>``)."""

from __future__ import annotations

from adapters.sandbox._control.cli import arguments, serve
from adapters.sandbox._messaging.server import Channel, MessagingConfig, create_app

__all__ = ["run"]


def run(channel: Channel, default_port: int, argv: list[str] | None = None) -> None:
    """Serve ``channel`` until interrupted (``--help`` lists the options)."""
    parser = arguments(f"The sandbox {channel.name}", default_port=default_port)
    parser.add_argument("--callback-secret", default="cbsec_sandbox", help="signs the receipts")
    parser.add_argument("--callback-url", help="where receipts are delivered (none: kept only)")
    parser.add_argument("--seed", type=int, default=2026, help="ids and fault draws")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every answer")
    args = parser.parse_args(argv)
    config = MessagingConfig(
        api_key=args.api_key,
        callback_secret=args.callback_secret,
        callback_url=args.callback_url,
        seed=args.seed,
        latency_ms=args.latency_ms,
    )
    serve(create_app(channel, config), args)
