"""Sandbox registrars as real processes on free loopback ports, and adapter configs for them."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fixtures_services import free_port
from tests.hubproc import ROOT, wait_http

__all__ = ["KEYS", "Sandbox", "adapter_document", "run_sandboxes"]

#: The API key each sandbox expects (and the hub's HUB_ADAPTER_SECRET_* holds).
KEYS = {
    "civil-registry": "civil-sandbox-key",
    "commercial-registry": "commercial-sandbox-key",
    "education-registry": "education-sandbox-key",
}
_MODULES = {
    "civil-registry": "adapters.sandbox.civil_registry",
    "commercial-registry": "adapters.sandbox.commercial_registry",
    "education-registry": "adapters.sandbox.education_registry",
}
PLUGINS = {
    "civil-registry": "civil_registry",
    "commercial-registry": "commercial_registry",
    "education-registry": "education_registry",
}


@dataclass
class Sandbox:
    """One running sandbox registrar and its control endpoints."""

    name: str
    url: str
    process: subprocess.Popen[bytes]

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self._post("/_sandbox/faults", faults)

    def reset(self) -> None:
        self._post("/_sandbox/reset", {})

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_sandbox/stats", timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data


@contextmanager
def run_sandboxes(
    tmp: Path, *, quota: Mapping[str, tuple[int, int]] | None = None
) -> Iterator[dict[str, Sandbox]]:
    """Start the three sandbox registrars; ``quota`` maps a name to (rate per s, burst)."""
    tmp.mkdir(parents=True, exist_ok=True)
    started: dict[str, Sandbox] = {}
    try:
        for name, module in _MODULES.items():
            port = free_port()
            args = [sys.executable, "-m", module, "--port", str(port), f"--api-key={KEYS[name]}"]
            rate, burst = (quota or {}).get(name, (0, 0))
            args += ["--quota", str(rate), "--quota-burst", str(burst), "--population", "5000"]
            with (tmp / f"{name}.log").open("wb") as log:
                process = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            started[name] = Sandbox(name=name, url=f"http://127.0.0.1:{port}", process=process)
        for sandbox in started.values():
            if not wait_http(sandbox.url + "/_sandbox/health", 30, process=sandbox.process):
                raise RuntimeError(f"{sandbox.name} did not start")
        yield started
    finally:
        for sandbox in started.values():
            sandbox.process.terminate()
        for sandbox in started.values():
            try:
                sandbox.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sandbox.process.kill()


def adapter_document(sandboxes: Mapping[str, Sandbox], **overrides: Any) -> list[dict[str, Any]]:
    """An ``adapters`` section for the sandboxes; ``overrides[name]`` is merged into one."""
    items = []
    for name, sandbox in sandboxes.items():
        item: dict[str, Any] = {
            "id": name,
            "plugin": PLUGINS[name],
            "base_url": sandbox.url,
            "contract": f"adapters/{name}",
            "credentials": {
                "scheme": "api_key",
                "header": "X-Registry-Key",
                "secret": name.replace("-", "_") + "_key",
            },
            "timeouts": {"connect": 1, "read": 1, "total": 3},
            "retries": {"max_retries": 2, "backoff_initial": 0.01, "backoff_max": 0.05},
            "breaker": {"failure_threshold": 5, "open_seconds": 0.5, "half_open_max": 1},
            "max_concurrent": 32,
        }
        item.update(overrides.get(name.replace("-", "_"), {}))
        items.append(item)
    return items


def secrets_env() -> dict[str, str]:
    """The HUB_ADAPTER_SECRET_* variables matching :data:`KEYS`."""
    return {
        "HUB_ADAPTER_SECRET_" + name.replace("-", "_").upper() + "_KEY": key
        for name, key in KEYS.items()
    }
