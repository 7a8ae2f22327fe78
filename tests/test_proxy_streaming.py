"""Bodies streamed through a real hub process: 200 MB each way with flat memory, chunked answers,
and a client that leaves mid-download.

Memory is the hub process's own: ``VmHWM`` (peak resident set) is reset through
``/proc/<pid>/clear_refs`` before a transfer and read after it, so the figure is the peak during
that transfer alone.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import metric, wait_until
from tests.hubproc import HubProcess, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
BIG = 200 * MiB
MAX_RSS_GROWTH = 64 * MiB
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
# What the upstream's /bytes sends, over and over.
PATTERN = bytes(range(256)) * 256


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("bulk").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("proxy-streaming")
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "bulk", "targets": [{"url": upstream.url}]}],
        routes=[
            {
                "id": "bulk",
                "prefix": "/api/bulk/",
                "upstream": "bulk",
                "strip_prefix": True,
                "max_body_bytes": BIG + MiB,
                "timeouts": {"connect": 5, "read": 30, "total": 120},
                "retries": {"max_retries": 0},
            }
        ],
    )
    with run_hub(tmp, policies, env={"HUB_ACCESS_LOG": "false"}, migrate=False) as process:
        yield process


@pytest.fixture(scope="module")
def client(hub: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=TIMEOUT) as http:
        yield http


# -- helpers ---------------------------------------------------------------------------------


class PeakMemory:
    """Growth of a process's peak resident set over a block, in bytes."""

    def __init__(self, pid: int) -> None:
        self._proc = Path(f"/proc/{pid}")
        self.before = 0
        self.peak = 0

    def _kib(self, field: str) -> int:
        for line in (self._proc / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} missing from {self._proc}/status")

    def __enter__(self) -> PeakMemory:
        try:
            (self._proc / "clear_refs").write_text("5")  # 5: reset the peak RSS to the current
        except OSError as exc:
            pytest.skip(f"cannot reset the peak RSS of the hub process: {exc}")
        self.before = self._kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.peak = self._kib("VmHWM") * 1024

    @property
    def growth(self) -> int:
        return self.peak - self.before


def expected_digest(size: int) -> str:
    digest = hashlib.sha256()
    whole, rest = divmod(size, len(PATTERN))
    for _ in range(whole):
        digest.update(PATTERN)
    digest.update(PATTERN[:rest])
    return digest.hexdigest()


def download(client: httpx.Client, path: str) -> tuple[httpx.Response, int, str]:
    """Stream a response, keeping only its size and sha256."""
    digest = hashlib.sha256()
    size = 0
    with client.stream("GET", path) as response:
        for chunk in response.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    return response, size, digest.hexdigest()


@pytest.fixture(scope="module")
def warm(client: httpx.Client) -> None:
    """One transfer each way first, so buffers and pools the hub keeps are not counted."""
    assert download(client, f"/api/bulk/bytes?n={4 * MiB}")[1] == 4 * MiB
    assert client.post("/api/bulk/echo", content=iter([PATTERN] * 64)).status_code == 200


# -- 200 MB each way -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("warm")
def test_200mb_download_streams_with_flat_memory(client: httpx.Client, hub: HubProcess) -> None:
    with PeakMemory(hub.process.pid) as memory:
        response, size, digest = download(client, f"/api/bulk/bytes?n={BIG}")

    assert response.status_code == 200
    assert response.headers["content-length"] == str(BIG)
    assert size == BIG
    assert digest == expected_digest(BIG)
    assert memory.growth < MAX_RSS_GROWTH, f"hub peak RSS grew {memory.growth / MiB:.1f} MiB"


@pytest.mark.slow
@pytest.mark.usefixtures("warm")
def test_200mb_upload_streams_with_flat_memory(client: httpx.Client, hub: HubProcess) -> None:
    block = PATTERN * 16  # 1 MiB
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for i in range(BIG // MiB):
            chunk = i.to_bytes(8, "big") + block[8:]  # every chunk differs: order matters
            digest.update(chunk)
            yield chunk

    with PeakMemory(hub.process.pid) as memory:
        response = client.post("/api/bulk/echo", content=body())

    assert response.status_code == 200
    echo = response.json()
    assert echo["body_bytes"] == BIG
    assert echo["body_sha256"] == digest.hexdigest()
    assert memory.growth < MAX_RSS_GROWTH, f"hub peak RSS grew {memory.growth / MiB:.1f} MiB"


# -- chunked and sized answers ---------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 10, 300_000, 5 * MiB + 3])
def test_chunked_response_passes(client: httpx.Client, size: int) -> None:
    response, received, digest = download(client, f"/api/bulk/bytes?n={size}&chunked=1")

    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert received == size
    assert digest == expected_digest(size)


@pytest.mark.parametrize("size", [1, 256 * 1024, 256 * 1024 + 1, 5 * MiB + 3])
def test_sized_response_keeps_its_length(client: httpx.Client, size: int) -> None:
    response, received, digest = download(client, f"/api/bulk/bytes?n={size}")

    assert response.status_code == 200
    assert response.headers["content-length"] == str(size)
    assert "transfer-encoding" not in response.headers
    assert received == size
    assert digest == expected_digest(size)


# -- a client that leaves --------------------------------------------------------------------


def test_client_leaving_mid_download_stops_the_upstream_transfer(
    client: httpx.Client, upstream: UpstreamServer
) -> None:
    sent_before = upstream.bytes_sent
    left_before = metric(client, "hub_requests_total", route="bulk", method="GET", status="499")

    with client.stream("GET", f"/api/bulk/bytes?n={BIG}") as response:
        assert response.status_code == 200
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received >= 2 * MiB:
                break
    # Leaving the block closed the connection with most of the body unread.

    labels = {"upstream": "bulk", "target": upstream.url}
    wait_until(lambda: metric(client, "hub_upstream_outstanding_requests", **labels) == 0.0, 10.0)
    # The upstream's handler saw its reader go.
    wait_until(lambda: upstream.in_flight == 0, timeout=10.0)
    assert upstream.bytes_sent - sent_before < BIG // 2
    left = metric(client, "hub_requests_total", route="bulk", method="GET", status="499")
    assert left == (left_before or 0.0) + 1

    # The hub serves on, on the same pool.
    assert download(client, f"/api/bulk/bytes?n={MiB}")[1:] == (MiB, expected_digest(MiB))


def test_client_leaving_mid_upload_releases_everything(
    client: httpx.Client, hub: HubProcess, upstream: UpstreamServer
) -> None:
    left_before = metric(client, "hub_requests_total", route="bulk", method="POST", status="499")
    head = f"POST /api/bulk/echo HTTP/1.1\r\nHost: hub\r\nContent-Length: {BIG}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as sock:
        sock.sendall(head.encode() + PATTERN * 32)  # 2 MiB of the announced 200 MiB
        # The upload is under way upstream.
        wait_until(lambda: upstream.in_flight == 1, timeout=10.0)

    labels = {"upstream": "bulk", "target": upstream.url}
    wait_until(lambda: upstream.in_flight == 0, timeout=10.0)
    wait_until(lambda: metric(client, "hub_upstream_outstanding_requests", **labels) == 0.0, 10.0)
    left = metric(client, "hub_requests_total", route="bulk", method="POST", status="499")
    assert left == (left_before or 0.0) + 1
    assert client.post("/api/bulk/echo", content=b"after").json()["body_bytes"] == 5
