"""Run the sandbox national IdP: ``python -m adapters.sandbox.national_idp --port 9400 ...``."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from adapters.sandbox.national_idp.app import create_app
from adapters.sandbox.national_idp.domain import IdpConfig
from adapters.sandbox.national_idp.people import DEFAULT_PEOPLE_FILE, load_people

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(description="The sandbox national identity provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", help="default: http://HOST:PORT")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        required=True,
        help="a registered redirect URI, matched exactly; repeat for more",
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every response")
    parser.add_argument("--people", type=Path, default=DEFAULT_PEOPLE_FILE)
    args = parser.parse_args(argv)
    config = IdpConfig(
        issuer=args.issuer or f"http://{args.host}:{args.port}",
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=tuple(args.redirect_uri),
        people=load_people(args.people),
        latency_ms=args.latency_ms,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
