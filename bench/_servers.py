"""The servers each scenario measures: nginx, the Python upstream, bare Litestar and the hub.

Each setup takes the run's :class:`Options` and the :class:`Servers` that own the processes,
starts what it needs on the right cores, waits until it answers, and returns a :class:`Target`;
:func:`measured_versions` records which versions of them a run measured.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _util import BODY, Server, Servers

__all__ = [
    "PIPELINE_PERMISSIONS",
    "ROOT",
    "Options",
    "ScenarioError",
    "ScenarioSkipped",
    "Setup",
    "Target",
    "direct",
    "direct_python",
    "fetch",
    "free_port",
    "hub",
    "hub_full",
    "hub_jwt",
    "hub_pipeline",
    "hub_plan",
    "hub_session",
    "litestar",
    "measured_versions",
    "nginx_proxy",
    "redis_env",
    "wait_ready",
]

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PATH = "/bench/json"  # what wrk asks for; every server answers it with the same 206 bytes
BENCH_SCOPE = "bench.read"  # what the hub-full route requires of the bearer token
# The *-redis scenarios: the hub's ephemeral store (login sessions) in Redis, so this harness
# can create a session the hub reads. Database 15, as the tests and bench_ratelimit.py use.
BENCH_REDIS_URL = "redis://127.0.0.1:6379/15"
BENCH_ACR = "urn:hub:acr:mfa"  # what the hub-session route requires, and the session has
_SESSION_IDLE_SECONDS = 600  # the bench's session lives 10 minutes, longer than a scenario


class ScenarioError(Exception):
    """A scenario cannot run (missing tool, server failed to start); the others still run."""


class ScenarioSkipped(ScenarioError):
    """An optional scenario whose server is not installed (granian)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How this run is set up; passed to every scenario's setup."""

    duration: int
    warmup: int
    connections: int
    threads: int
    server_cpu: int | None
    load_cpu: int | None
    upstream: str  # "nginx" or "python": what the proxy scenarios forward to
    venv_bin: Path
    wrk: str
    nginx: str | None
    taskset: str | None
    tmp: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What a scenario's setup started: the URL to load and who runs on which core."""

    url: str
    server: tuple[Server, ...]  # on the server core: what is being measured
    load: tuple[Server, ...] = ()  # on the load core beside wrk (the proxies' upstream)
    headers: tuple[str, ...] = ()  # extra wrk -H headers (e.g. Authorization for hub-full)


Setup = Callable[[Options, Servers], Target]


# --- readiness --------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(
    url: str,
    timeout: float = 2.0,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, bytes]:
    """GET (POST with ``data``) ``url``: status and body, HTTP errors included (no exception)."""
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def wait_ready(
    server: Server,
    url: str,
    *,
    timeout: float,
    expect: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """Poll ``url`` until it answers 200 (and ``expect`` when given); raise with the log if not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited with status {server.proc.returncode}:\n{server.log_tail()}"
            )
        try:
            status, body = fetch(url, timeout=1.0, headers=headers)
        except (OSError, urllib.error.URLError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 and (expect is None or body == expect):
                return status, body
            last = f"HTTP {status}: {body[:200]!r}"
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} not ready at {url} after {timeout:.0f}s ({last}):\n{server.log_tail()}"
    )


# --- the setups -------------------------------------------------------------------------------


def _nginx(
    opts: Options, servers: Servers, name: str, *, cpu: int | None, proxy_to: int = 0
) -> tuple[Server, int]:
    """nginx answering the JSON itself, or (``proxy_to``) proxying with keep-alive to a port."""
    if opts.nginx is None:
        raise ScenarioError("nginx is not installed (see the messages above)")
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=opts.tmp))
    port = free_port()
    if proxy_to:
        upstream = (
            f"upstream bench_upstream {{ server 127.0.0.1:{proxy_to}; "
            "keepalive 64; keepalive_requests 1000000; }"
        )
        location = (
            "proxy_pass http://bench_upstream; proxy_http_version 1.1;"
            ' proxy_set_header Connection "";'
        )
    else:
        upstream = ""
        location = f"return 200 '{BODY.decode()}';"
    text = (BENCH / "nginx.conf.template").read_text()
    for key, value in {
        "@DIR@": str(directory),
        "@PORT@": str(port),
        "@UPSTREAM@": upstream,
        "@LOCATION@": location,
    }.items():
        text = text.replace(key, value)
    conf = directory / "nginx.conf"
    conf.write_text(text)
    argv = [opts.nginx, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    server = servers.start(name, argv, cpu=cpu)
    wait_ready(server, f"http://127.0.0.1:{port}{PATH}", timeout=10, expect=BODY)
    return server, port


def _python_upstream(
    opts: Options, servers: Servers, name: str, *, cpu: int | None
) -> tuple[Server, int]:
    port = free_port()
    argv = [str(opts.venv_bin / "python"), str(BENCH / "upstream.py"), "--port", str(port)]
    server = servers.start(name, argv, cpu=cpu)
    wait_ready(server, f"http://127.0.0.1:{port}{PATH}", timeout=15, expect=BODY)
    return server, port


def _upstream(opts: Options, servers: Servers) -> tuple[Server, int]:
    """The proxies' upstream, on the load core so the proxy under test has its core alone."""
    if opts.upstream == "nginx":
        return _nginx(opts, servers, "upstream", cpu=opts.load_cpu)
    return _python_upstream(opts, servers, "upstream", cpu=opts.load_cpu)


def direct(opts: Options, servers: Servers) -> Target:
    server, port = _nginx(opts, servers, "direct", cpu=opts.server_cpu)
    return Target(url=f"http://127.0.0.1:{port}{PATH}", server=(server,))


def direct_python(opts: Options, servers: Servers) -> Target:
    server, port = _python_upstream(opts, servers, "direct-python", cpu=opts.server_cpu)
    return Target(url=f"http://127.0.0.1:{port}{PATH}", server=(server,))


def nginx_proxy(opts: Options, servers: Servers) -> Target:
    upstream, upstream_port = _upstream(opts, servers)
    proxy, port = _nginx(opts, servers, "proxy", cpu=opts.server_cpu, proxy_to=upstream_port)
    return Target(url=f"http://127.0.0.1:{port}{PATH}", server=(proxy,), load=(upstream,))


def litestar(opts: Options, servers: Servers, *, granian: bool = False) -> Target:
    port = free_port()
    if granian:
        executable = opts.venv_bin / "granian"
        if not executable.exists():
            raise ScenarioSkipped(f"granian is not installed in {opts.venv_bin}")
        argv = [str(executable), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--no-access-log"]
        argv += ["--log-level", "warning", "--working-dir", str(BENCH), "bare_litestar:app"]
    else:
        argv = [str(opts.venv_bin / "uvicorn"), "bare_litestar:app", "--app-dir", str(BENCH)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        argv += [
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    server = servers.start(
        "granian" if granian else "uvicorn", argv, cpu=opts.server_cpu, cwd=BENCH
    )
    url = f"http://127.0.0.1:{port}{PATH}"
    wait_ready(server, url, timeout=20, expect=BODY)
    return Target(url=url, server=(server,))


@functools.cache
def _hub_unavailable(hub: Path) -> str | None:
    """Why ``hub serve`` cannot run yet, or None when ``hub serve --help`` works."""
    if not hub.exists():
        return f"{hub} does not exist (pip install -e . in the venv)"
    try:
        done = subprocess.run(
            [str(hub), "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`hub serve --help` failed: {exc}"
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return f"`hub serve --help` exited {done.returncode}:\n{tail}"
    return None


def _start_hub(
    opts: Options,
    servers: Servers,
    *,
    route_extra: Mapping[str, Any] | None = None,
    sections: Mapping[str, Any] | None = None,
    env_extra: Mapping[str, str] | None = None,
) -> tuple[Server, Server, str, dict[str, str]]:
    """Start ``hub serve`` with one prefix route to the upstream: hub, upstream, URL, env."""
    cli = opts.venv_bin / "hub"
    reason = _hub_unavailable(cli)
    if reason:
        raise ScenarioError(reason)
    upstream, upstream_port = _upstream(opts, servers)
    directory = Path(tempfile.mkdtemp(prefix="hub-", dir=opts.tmp))
    policies, data = directory / "policies", directory / "data"
    policies.mkdir()
    data.mkdir()
    route = {"id": "bench", "prefix": "/bench/", "upstream": "bench", **(route_extra or {})}
    documents: dict[str, Any] = {
        "upstreams": [{"id": "bench", "targets": [{"url": f"http://127.0.0.1:{upstream_port}"}]}],
        "routes": [route],
        "products": [],
        **(sections or {}),
    }
    for section, value in documents.items():
        # JSON is YAML: no YAML library needed here, one section per file as the loader wants.
        (policies / f"{section}.yaml").write_text(json.dumps({section: value}, indent=2) + "\n")
    port = free_port()
    # Start from a clean HUB_* slate so the caller's shell cannot change what is measured.
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUB_")}
    env |= {
        "HUB_HOST": "127.0.0.1",
        "HUB_PORT": str(port),
        "HUB_WORKERS": "1",
        "HUB_POLICIES_DIR": str(policies),
        "HUB_DATA_DIR": str(data),
        "HUB_ACCESS_LOG": "false",
        "HUB_LOG_LEVEL": "warning",
        "HUB_SHUTDOWN_GRACE_SECONDS": "2",
        **(env_extra or {}),
    }
    server = servers.start("hub", [str(cli), "serve"], cpu=opts.server_cpu, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(server, f"{base}/healthz", timeout=60)
    return server, upstream, base, env


def hub(
    opts: Options,
    servers: Servers,
    *,
    route_extra: Mapping[str, Any] | None = None,
    sections: Mapping[str, Any] | None = None,
    env_extra: Mapping[str, str] | None = None,
    headers: Sequence[str] = (),
) -> Target:
    """The hub (``hub serve``, embedded back-ends) with one prefix route to the upstream.

    ``route_extra`` is merged into the route, ``sections`` adds policy sections (permissions,
    plans, consumers), ``env_extra`` adds HUB_* settings and ``headers`` go on every request.
    """
    server, upstream, base, _env = _start_hub(
        opts, servers, route_extra=route_extra, sections=sections, env_extra=env_extra
    )
    wait_ready(server, f"{base}{PATH}", timeout=15, expect=BODY)
    return Target(url=f"{base}{PATH}", server=(server,), load=(upstream,), headers=tuple(headers))


def _register_client(opts: Options, env: Mapping[str, str]) -> tuple[str, str]:
    """``hub clients create`` against the running hub's database: client id and secret."""
    argv = [str(opts.venv_bin / "hub"), "clients", "create", "--name", "bench"]
    argv += ["--owner", "bench", "--scopes", BENCH_SCOPE]
    done = subprocess.run(
        argv, env=dict(env), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ScenarioError(f"`hub clients create` exited {done.returncode}:\n{done.stderr}")
    fields = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip():
            fields[name.strip()] = value.strip()
    if "client_id" not in fields or "client_secret" not in fields:
        raise ScenarioError("`hub clients create` printed no client_id and client_secret")
    return fields["client_id"], fields["client_secret"]


def _client_credentials_token(base: str, client_id: str, secret: str) -> str:
    """An access token from the hub's token endpoint (client_secret_basic)."""
    basic = base64.b64encode(
        f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}".encode()
    ).decode()
    status, body = fetch(
        f"{base}/oauth2/token",
        timeout=10,
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
    )
    if status != 200:
        # The error document names no secret; the token endpoint never echoes credentials.
        raise ScenarioError(f"the token endpoint answered {status}: {body[:300]!r}")
    token: str = json.loads(body)["access_token"]
    return token


def redis_env() -> dict[str, str]:
    """HUB_* settings of the *-redis scenarios: Redis back-ends, a config channel of their own."""
    return {
        "HUB_REDIS_URL": BENCH_REDIS_URL,
        "HUB_CONFIG_CHANNEL": f"bench:config:{os.getpid()}",
        "HUB_SESSION_IDLE_SECONDS": str(_SESSION_IDLE_SECONDS),
    }


def hub_jwt(
    opts: Options,
    servers: Servers,
    *,
    route_extra: Mapping[str, Any] | None = None,
    env_extra: Mapping[str, str] | None = None,
) -> Target:
    """The hub verifying a bearer JWT (scope ``bench.read``) on the route, then proxying.

    A client is registered with ``hub clients create`` once the hub is up, and one access token
    (valid for an hour, longer than any run) goes on every request, as a vendor platform that
    reuses its token does. ``route_extra`` adds to the route (a rate limit, say).
    """
    route = {"auth": {"methods": ["jwt"], "scopes": [BENCH_SCOPE]}, **(route_extra or {})}
    env = {"HUB_ACCESS_TOKEN_SECONDS": "3600", **(env_extra or {})}
    server, upstream, base, hub_env = _start_hub(opts, servers, route_extra=route, env_extra=env)
    client_id, secret = _register_client(opts, hub_env)
    token = _client_credentials_token(base, client_id, secret)
    bearer = {"Authorization": f"Bearer {token}"}
    status, body = fetch(f"{base}{PATH}", timeout=5)
    if status != 401:
        raise ScenarioError(f"the route answered {status} without a token, not 401: {body[:200]!r}")
    wait_ready(server, f"{base}{PATH}", timeout=15, expect=BODY, headers=bearer)
    return Target(
        url=f"{base}{PATH}",
        server=(server,),
        load=(upstream,),
        headers=(f"Authorization: Bearer {token}",),
    )


def hub_full(opts: Options, servers: Servers) -> Target:
    """The hub verifying a bearer JWT and applying a GCRA limit on the route, then proxying.

    Permission policies are not in the hub yet: they join this scenario when they land.
    """
    limit = {"rate_limit": {"rate": 1_000_000, "burst": 1000, "key": "ip"}}
    return hub_jwt(opts, servers, route_extra=limit)


def _subscribe(opts: Options, env: Mapping[str, str], client_id: str) -> None:
    """``hub subscriptions create`` for the bench client, on the running hub's database."""
    argv = [str(opts.venv_bin / "hub"), "subscriptions", "create", "--client", client_id]
    argv += ["--product", "bench", "--plan", "bench"]
    done = subprocess.run(
        argv, env=dict(env), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ScenarioError(f"`hub subscriptions create` exited {done.returncode}:\n{done.stderr}")


def hub_plan(
    opts: Options,
    servers: Servers,
    *,
    permissions: Sequence[Mapping[str, Any]] = (),
    env_extra: Mapping[str, str] | None = None,
) -> Target:
    """hub-full on a product that requires a subscription: the client's subscription (cached),
    its plan's quota, the route's and the plan's rate in one limiter step, usage counted.

    The plan's rate and quotas are far above what a run reaches, so every request passes
    every check: what is measured is their cost. ``permissions`` adds policies covering the
    route (the full pipeline), ``env_extra`` settings such as Redis back-ends.
    """
    route = {
        "auth": {"methods": ["jwt"], "scopes": [BENCH_SCOPE]},
        "rate_limit": {"rate": 1_000_000, "burst": 1000, "key": "ip"},
        "product": "bench",
        "version": 1,
    }
    sections = {
        "products": [
            {
                "id": "bench",
                "version": 1,
                "title": "Bench",
                "subscription": {"required": True, "plans": ["bench"]},
            }
        ],
        "plans": [
            {
                "id": "bench",
                "title": "Bench",
                "rate": {"rate": 1_000_000, "burst": 1000},
                "quota": {"daily": 1_000_000_000, "monthly": 1_000_000_000},
            }
        ],
    }
    if permissions:
        sections["permissions"] = list(permissions)
    env = {"HUB_ACCESS_TOKEN_SECONDS": "3600", **(env_extra or {})}
    server, upstream, base, hub_env = _start_hub(
        opts, servers, route_extra=route, sections=sections, env_extra=env
    )
    client_id, secret = _register_client(opts, hub_env)
    _subscribe(opts, hub_env, client_id)
    token = _client_credentials_token(base, client_id, secret)
    bearer = {"Authorization": f"Bearer {token}"}
    wait_ready(server, f"{base}{PATH}", timeout=15, expect=BODY, headers=bearer)
    return Target(
        url=f"{base}{PATH}",
        server=(server,),
        load=(upstream,),
        headers=(f"Authorization: Bearer {token}",),
    )


# The full pipeline's permission: a deny rule that never matches a client (checked first, as
# deny-overrides requires), then an allow with conditions on the principal and the request.
PIPELINE_PERMISSIONS: tuple[dict[str, Any], ...] = (
    {
        "id": "bench.read",
        "routes": ["bench"],
        "rules": [
            {
                "id": "no-api-key-writes",
                "effect": "deny",
                "subjects": {"kinds": ["api_key"]},
                "resources": {"methods": ["POST", "PUT", "PATCH", "DELETE"]},
            },
            {
                "id": "clients-read",
                "effect": "allow",
                "subjects": {"kinds": ["client"], "scopes": [BENCH_SCOPE]},
                "resources": {"methods": ["GET"]},
                "conditions": [
                    {"attr": "request.client_ip", "op": "cidr", "value": ["127.0.0.0/8"]},
                    {"attr": "principal.client_id", "op": "exists"},
                ],
            },
        ],
    },
)


def hub_pipeline(opts: Options, servers: Servers, *, redis: bool = False) -> Target:
    """The whole pipeline: bearer JWT, subscription, quota, route + plan rate, permission, proxy."""
    return hub_plan(
        opts, servers, permissions=PIPELINE_PERMISSIONS, env_extra=redis_env() if redis else None
    )


# Run with the venv's Python: creates a login session in the hub's Redis ephemeral store, as a
# sign-in would, and prints the cookie value. Keeps this harness free of the hub's imports.
_CREATE_SESSION = """
import asyncio, sys
from hub.backends.ephemeral.redis import RedisEphemeralStore
from hub.identity.sessions import SessionManager

async def main() -> None:
    url, idle, acr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = RedisEphemeralStore.from_url(url)
    sessions = SessionManager(store, idle_seconds=idle, max_seconds=idle)
    raw, _ = await sessions.create(person_id="bench-person", acr=acr, amr=["pwd", "otp"])
    await store.aclose()
    print(raw)

asyncio.run(main())
"""


def _create_session(opts: Options) -> str:
    """A login session in the bench Redis (what signing in makes): its cookie value."""
    argv = [str(opts.venv_bin / "python"), "-c", _CREATE_SESSION, BENCH_REDIS_URL]
    argv += [str(_SESSION_IDLE_SECONDS), BENCH_ACR]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    raw = done.stdout.strip()
    if done.returncode != 0 or not raw:
        raise ScenarioError(
            f"creating a session in Redis failed ({done.returncode}):\n{done.stderr}"
        )
    return raw


def hub_session(opts: Options, servers: Servers) -> Target:
    """The hub reading its session cookie (sessions in Redis) and checking the acr, then proxying.

    The route is ``auth: {methods: [session], acr: urn:hub:acr:mfa}``. The session is created
    in Redis before the run (the hub cannot share an in-process store with this harness) and
    its cookie goes on every request, as a signed-in browser's GET calls carry it: each one reads
    the session (``GET``) and renews its idle lifetime (``PEXPIRE``), two Redis round trips.
    """
    route = {"auth": {"methods": ["session"], "acr": BENCH_ACR}}
    server, upstream, base, _env = _start_hub(
        opts, servers, route_extra=route, env_extra=redis_env()
    )
    raw = _create_session(opts)
    # HUB_ISSUER is http:// here, so the cookie is the non-__Host- one.
    cookie = {"Cookie": f"hub_session={raw}"}
    status, body = fetch(f"{base}{PATH}", timeout=5)
    if status != 401:
        raise ScenarioError(
            f"the route answered {status} without a cookie, not 401: {body[:200]!r}"
        )
    wait_ready(server, f"{base}{PATH}", timeout=15, expect=BODY, headers=cookie)
    return Target(
        url=f"{base}{PATH}",
        server=(server,),
        load=(upstream,),
        headers=(f"Cookie: hub_session={raw}",),
    )


# --- the record -------------------------------------------------------------------------------


def measured_versions(opts: Options) -> dict[str, str]:
    """Versions of what was measured, for the JSON record."""
    versions = {"python": platform.python_version()}
    probe = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name in ('litestar', 'uvicorn', 'granian', 'uvloop', 'httptools', 'aiohttp'):\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "out['venv-python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))\n"
    )
    commands: dict[str, list[str]] = {"venv": [str(opts.venv_bin / "python"), "-c", probe]}
    if opts.nginx:
        commands["nginx"] = [opts.nginx, "-v"]
    commands["wrk"] = [opts.wrk, "-v"]
    commands["commit"] = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
    for name, argv in commands.items():
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = (done.stdout + done.stderr).strip()
        if name == "venv" and done.returncode == 0:
            versions.update(json.loads(done.stdout))
        elif text:
            versions[name] = text.splitlines()[0].replace("nginx version: ", "")
    return versions
