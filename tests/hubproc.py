"""Start a real hub process on a free loopback port, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures_services import events_namespace, free_port

__all__ = [
    "ADMIN_TOKEN",
    "CONFIG_CHANNEL",
    "HubProcess",
    "hub_command",
    "run_hub",
    "wait_http",
    "write_policies",
]

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token"
# One config channel per test session: hubs of this run hear each other, not other runs.
CONFIG_CHANNEL = f"hub:config:test:{uuid.uuid4().hex[:12]}"
TEST_NAMESPACE = events_namespace()


@dataclass
class HubProcess:
    """A running hub: its base URL, process and log file."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def write_policies(
    folder: Path,
    *,
    upstreams: Sequence[Mapping[str, Any]],
    routes: Sequence[Mapping[str, Any]],
    products: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write a configuration folder the hub can load."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "upstreams.yaml").write_text(yaml.safe_dump({"upstreams": list(upstreams)}))
    (folder / "routes.yaml").write_text(yaml.safe_dump({"routes": list(routes)}))
    (folder / "products.yaml").write_text(yaml.safe_dump({"products": list(products)}))
    return folder


def wait_http(
    url: str,
    timeout: float = 20.0,
    *,
    ok: Sequence[int] = (200,),
    process: subprocess.Popen[bytes] | None = None,
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False  # it exited: no point in waiting for it

        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status in ok:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


def hub_env(
    tmp: Path,
    policies: Path,
    port: int,
    *,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a test hub: nothing inherited from the developer's HUB_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        {
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(port),
            "HUB_POLICIES_DIR": str(policies),
            "HUB_DATA_DIR": str(tmp / "data"),
            "HUB_ADMIN_TOKEN": ADMIN_TOKEN,
            "HUB_LOG_LEVEL": "info",
            "HUB_SHUTDOWN_GRACE_SECONDS": "10",
            "HUB_CONFIG_CHANNEL": CONFIG_CHANNEL,
            # this test process's own queues and Redis keys: parallel runs never share them
            "HUB_EVENTS_NAMESPACE": TEST_NAMESPACE,
        }
    )
    env.update(extra or {})
    return env


def hub_command(tmp: Path, hub: HubProcess, env: Mapping[str, str], *args: str) -> dict[str, str]:
    """Run ``hub ARGS`` against the hub's database; the ``name: value`` lines of its output."""
    done = subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=hub_env(tmp, tmp / "policies", hub.port, extra=env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = (line.partition(":") for line in done.stdout.splitlines())
    return {name.strip(): value.strip() for name, sep, value in lines if sep and value.strip()}


@contextmanager
def run_hub(
    tmp: Path,
    policies: Path,
    *,
    env: Mapping[str, str] | None = None,
    migrate: bool = True,
    ready_timeout: float = 30.0,
) -> Iterator[HubProcess]:
    """Run ``python -m hub serve`` until the block ends; fail with its log if it does not start."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = hub_env(tmp, policies, port, extra=env)
    log_path = tmp / f"hub-{port}.log"
    if migrate:
        subprocess.run(
            [sys.executable, "-m", "hub", "migrate"],
            env=full_env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve"],
            env=full_env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        hub = HubProcess(
            url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path
        )
        try:
            if not wait_http(f"{hub.url}/readyz", ready_timeout, process=process):
                hub.stop(signal.SIGKILL)
                raise RuntimeError(f"the hub did not become ready:\n{hub.log()}")
            yield hub
        finally:
            hub.stop()
