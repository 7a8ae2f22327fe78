"""Run the demo citizen portal: ``python -m services.portal --port 9200 --hub http://127.0.0.1:8080``."""

from __future__ import annotations

import argparse

import uvicorn

from services.portal.app import PortalConfig, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="The hub's demo citizen portal (an OIDC client)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--hub", default="http://127.0.0.1:8080", help="the hub's issuer URL")
    parser.add_argument("--client-id", default="citizen-portal")
    args = parser.parse_args()
    config = PortalConfig(
        hub=args.hub.rstrip("/"),
        client_id=args.client_id,
        base_url=f"http://{args.host}:{args.port}",
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
