"""What the end-to-end benches share: the policies on a run's ports, and the hub's own CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["hub_cli", "policies"]


def policies(folder: Path, ports: dict[str, int], *, upstream: str) -> Path:
    """The repository's policies on this run's ports, without the demo's rate limits.

    Each adapter with a port in ``ports`` points at it (the sandboxes run without quota here);
    the ``upstream`` service points at ``ports[upstream]``.
    """
    target = folder / "policies"
    shutil.copytree(ROOT / "policies", target)
    adapters = yaml.safe_load((target / "adapters.yaml").read_text())
    for adapter in adapters["adapters"]:
        if adapter["id"] in ports:
            adapter["base_url"] = f"http://127.0.0.1:{ports[adapter['id']]}"
        adapter.pop("rate_limit", None)
        adapter["max_concurrent"] = 256
    (target / "adapters.yaml").write_text(yaml.safe_dump(adapters))
    routes = yaml.safe_load((target / "routes.yaml").read_text())
    for route in routes["routes"]:
        route.pop("rate_limit", None)
    (target / "routes.yaml").write_text(yaml.safe_dump(routes))
    upstreams = yaml.safe_load((target / "upstreams.yaml").read_text())
    for entry in upstreams["upstreams"]:
        if entry["id"] == upstream:
            entry["targets"] = [{"url": f"http://127.0.0.1:{ports[upstream]}"}]
    (target / "upstreams.yaml").write_text(yaml.safe_dump(upstreams))
    return target


def hub_cli(env: dict[str, str], *args: str) -> dict[str, str]:
    """Run ``python -m hub ARGS``; the ``key: value`` lines it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "hub", *args], env=env, cwd=ROOT, capture_output=True,
        text=True, check=True, timeout=60,
    )  # fmt: skip
    pairs = (line.partition(":") for line in done.stdout.splitlines())
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and v.strip()}
