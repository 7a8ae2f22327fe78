"""Run the sandbox payment provider: ``python -m adapters.sandbox.payment_provider``."""

from __future__ import annotations

from adapters.sandbox._control.cli import arguments, serve
from adapters.sandbox.payment_provider.app import ProviderConfig, create_app

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (``--port`` is required; ``--help`` lists the options)."""
    parser = arguments("The sandbox payment provider")
    parser.add_argument("--webhook-secret", default="whsec_sandbox", help="signs the webhooks")
    parser.add_argument("--webhook-url", help="where webhooks are delivered (none: kept only)")
    parser.add_argument("--seed", type=int, default=2026, help="fault draws")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every answer")
    parser.add_argument("--settle-seconds", type=float, default=0.3, help="bank transfers")
    parser.add_argument(
        "--authorisation-seconds",
        type=float,
        default=7 * 86400,
        help="an uncaptured authorisation lapses (is cancelled as expired) after this",
    )
    args = parser.parse_args(argv)
    config = ProviderConfig(
        api_key=args.api_key,
        webhook_secret=args.webhook_secret,
        webhook_url=args.webhook_url,
        seed=args.seed,
        latency_ms=args.latency_ms,
        settle_seconds=args.settle_seconds,
        authorisation_seconds=args.authorisation_seconds,
    )
    serve(create_app(config), args)


if __name__ == "__main__":
    main()
