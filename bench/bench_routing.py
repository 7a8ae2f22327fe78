"""Micro-benchmark of the route matcher and path normalisation: ns per call.

Run: ``python bench/bench_routing.py`` (about ten seconds). Tables of 10, 200 and 2000 routes
are shaped like a real configuration: per service a catch-all prefix, item templates with
parameters and methods, and a few host- and header-conditioned routes; the requests mix hits
on every kind with misses. Each figure is the best of several timed rounds.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence

from hub.config.model import RouteSpec
from hub.routing.normalise import encode_path, normalise_path
from hub.routing.table import RouteTable

Request = tuple[str, str, str, list[tuple[bytes, bytes]]]

_HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"api.example.gov"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"application/json"),
    (b"x-channel", b"portal"),
]


def build_routes(count: int) -> list[RouteSpec]:
    """``count`` routes, about ten per service, as a configuration would declare them."""
    routes: list[RouteSpec] = []

    def add(**fields: object) -> None:
        n = len(routes)
        routes.append(RouteSpec(id=f"r{n}", upstream="u", order=n, **fields))  # type: ignore[arg-type]

    service = 0
    while len(routes) < count:
        base = f"/api/svc{service}/v1"
        add(prefix=base + "/")
        add(path=base + "/items", methods=("GET", "POST"))
        add(path=base + "/items/{id}", methods=("GET", "PUT", "DELETE"))
        add(path=base + "/items/{id}/history", methods=("GET",))
        add(path=base + "/items/{id}/attachments/{name}", methods=("GET",))
        add(path=base + "/search", methods=("POST",), headers=(("x-channel", "portal"),))
        add(prefix=base + "/admin", hosts=("admin.example.gov",))
        add(prefix=base + "/public", hosts=("*.example.gov",))
        add(path=base + "/status")
        add(prefix=f"/api/svc{service}/v2/")
        service += 1
    return routes[:count]


def build_requests(count: int, rng: random.Random) -> list[Request]:
    """Requests spread over the services of a ``count``-route table, hits and misses."""
    services = max(1, count // 10)
    requests: list[Request] = []
    for _ in range(512):
        base = f"/api/svc{rng.randrange(services)}/v1"
        method, host, path = rng.choice(
            [
                ("GET", "api.example.gov", f"{base}/items/{rng.randrange(10**6)}"),
                ("PUT", "api.example.gov", f"{base}/items/{rng.randrange(10**6)}"),
                ("GET", "api.example.gov", f"{base}/items/42/attachments/scan.pdf"),
                ("GET", "api.example.gov", f"{base}/items"),
                ("POST", "api.example.gov", f"{base}/search"),
                ("GET", "admin.example.gov", f"{base}/admin/users/7"),
                ("GET", "www.example.gov", f"{base}/public/docs/index.html"),
                ("GET", "api.example.gov", f"{base}/other/deep/path/below"),
                ("GET", "api.example.gov", "/no/such/route"),
            ]
        )
        requests.append((method, host, path, _HEADERS))
    return requests


def best_ns(call: Callable[[], object], items: int, budget: float) -> float:
    """Best per-item time over rounds of ``call`` (which handles ``items`` items), in ns."""
    best = float("inf")
    deadline = time.perf_counter() + budget
    rounds = 0
    while rounds < 3 or time.perf_counter() < deadline:
        started = time.process_time_ns()
        call()
        best = min(best, (time.process_time_ns() - started) / items)
        rounds += 1
    return best


def bench_table(count: int, budget: float) -> tuple[float, float]:
    """ns per match on a ``count``-route table, and the compile time in ms."""
    routes = build_routes(count)
    started = time.perf_counter()
    table = RouteTable.compile(routes)
    compile_ms = (time.perf_counter() - started) * 1000
    requests = build_requests(count, random.Random(count))
    match = table.match
    assert all(
        match(*request) is not None for request in requests if request[2].startswith("/api/")
    )

    def run() -> None:
        for method, host, path, headers in requests:
            match(method, host, path, headers)

    return best_ns(run, len(requests), budget), compile_ms


def bench_paths(paths: Sequence[bytes], budget: float) -> tuple[float, float]:
    """ns per normalise_path and per encode_path over ``paths``."""
    decoded = [normalise_path(raw) for raw in paths]

    def normalise() -> None:
        for raw in paths:
            normalise_path(raw)

    def encode() -> None:
        for path in decoded:
            encode_path(path)

    return best_ns(normalise, len(paths), budget), best_ns(encode, len(paths), budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per figure")
    args = parser.parse_args()

    print(f"{'routes':>8} {'ns/match':>10} {'compile ms':>11}")
    for count in (10, 200, 2000):
        ns, compile_ms = bench_table(count, args.budget)
        print(f"{count:>8} {ns:>10.0f} {compile_ms:>11.1f}")

    plain = [b"/api/svc3/v1/items/12345", b"/api/svc3/v1/items/42/attachments/scan.pdf"] * 64
    tricky = [b"/api/svc3/v1/items/%7Bx%7D", b"/api/svc3//v1/./items/../items/caf%C3%A9"] * 64
    print(f"\n{'paths':>8} {'ns/normalise':>13} {'ns/encode':>10}")
    for label, paths in (("plain", plain), ("encoded", tricky)):
        normalise_ns, encode_ns = bench_paths(paths, args.budget)
        print(f"{label:>8} {normalise_ns:>13.0f} {encode_ns:>10.0f}")


if __name__ == "__main__":
    main()
