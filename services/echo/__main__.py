"""Run the echo service: ``python -m services.echo --port 9101 --name echo-1``."""

from __future__ import annotations

import argparse

import uvicorn

from services.echo.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="The hub's demo echo upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--name", default="echo")
    args = parser.parse_args()
    uvicorn.run(create_app(args.name), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
