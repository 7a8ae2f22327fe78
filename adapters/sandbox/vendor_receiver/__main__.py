"""Run the sandbox vendor receiver: ``python -m adapters.sandbox.vendor_receiver --port 9500``."""

from __future__ import annotations

import argparse

import uvicorn

from adapters.sandbox.vendor_receiver.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="The sandbox vendor webhook receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
