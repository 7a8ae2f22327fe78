"""Key rotation under load: no valid token is refused while the signing keys change.

Two hub replicas share one database (SQLite in WAL mode, or PostgreSQL). Worker threads keep
fetching fresh access tokens from the replicas and calling a protected route with each token on
both, while ``hub keys rotate`` replaces the access key and the internal key. The rule the
rotation must keep: a key is in every replica's JWKS before any token signed with it is seen,
and tokens signed by the retiring key stay valid everywhere.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from hub.auth.internal import InternalTokenVerifier
from hub.auth.jwks import load_jwks
from tests.hubproc import ROOT, HubProcess, hub_env, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

# One issuer for both replicas, whatever port each listens on (plain http only on loopback).
ISSUER = "http://127.0.0.1"
PUBLISH_SECONDS = 2
WORKERS = 12
TIMEOUT = 10.0
# Load before the rotations, and after both new keys have been signing for a while.
LEAD_SECONDS = 0.5
TAIL_SECONDS = 1.0
# The hub's clock and ours are the same machine's; this only absorbs scheduling delays.
CLOCK_SLACK = 0.25
ROUTE = "/api/read/echo"

# `python -m hub ARGS`, except that it waits for a line on stdin after the imports: the command's
# Python start-up (about 2 s of CPU) is paid before the load, not stretched by it for seconds.
_PRIMED = """
import sys
from hub.cli.main import main
sys.stderr.write("primed\\n")
sys.stderr.flush()
sys.stdin.readline()
sys.argv = ["hub", *sys.argv[1:]]
main()
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


class HubCommand:
    """``hub ARGS`` against the hubs' database, run now or primed to run on :meth:`go`."""

    def __init__(
        self, env: Mapping[str, str], folder: Path, *args: str, primed: bool = False
    ) -> None:
        name = f"cli-{args[0]}-{uuid.uuid4().hex[:8]}"
        self.args = args
        self._out, self._err = folder / f"{name}.out", folder / f"{name}.err"
        code = ["-c", _PRIMED] if primed else ["-m", "hub"]
        with self._out.open("w") as out, self._err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, *code, *args],
                env=dict(env),
                cwd=ROOT,
                stdin=subprocess.PIPE if primed else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
            )

    def wait_primed(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "primed\n" not in self._err.read_text():
            assert self.process.poll() is None, f"hub {self.args} exited:\n{self._err.read_text()}"
            assert time.monotonic() < deadline, f"hub {self.args} was not primed in {timeout}s"
            time.sleep(0.05)

    def go(self) -> float:
        """Let a primed command run; when it was let go."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.close()
        return time.monotonic()

    def output(self, timeout: float = 60.0) -> str:
        """Wait for the command (it must succeed): what it printed."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        assert self.process.returncode == 0, f"hub {self.args} failed:\n{self._err.read_text()}"
        return self._out.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def field_of(output: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}:\s*(\S+)", output, re.MULTILINE)
    assert match, f"no {name!r} in:\n{output}"
    return match.group(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    """One ``hub keys rotate``: the new kid, when the command was let go and when it had ended."""

    kid: str
    started: float
    ended: float


def rotated(command: HubCommand, started: float) -> Rotation:
    output = command.output()
    ended = time.monotonic()
    match = re.search(r"new (?:access|internal) key (\S+) ", output)
    assert match, output
    return Rotation(kid=match.group(1), started=started, ended=ended)


def wait_for_load(record: Record, lead: float, timeout: float = 30.0) -> None:
    """Until the load has answers of both kinds (access and principal tokens), then ``lead``."""
    deadline = time.monotonic() + timeout
    while True:
        with record.lock:
            if record.failures or (record.tokens and record.internal):
                break
        assert time.monotonic() < deadline, f"the load saw no answer in {timeout}s"
        time.sleep(0.05)
    time.sleep(lead)


@dataclass
class Record:
    """What the load saw, shared by the threads (append under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # (sent, received, kid): one per access token obtained
    tokens: list[tuple[float, float, str]] = field(default_factory=list)
    # (sent, received, kid): one per principal token an upstream received
    internal: list[tuple[float, float, str]] = field(default_factory=list)
    internal_samples: dict[str, str] = field(default_factory=dict)  # kid -> one token
    calls: dict[str, int] = field(default_factory=dict)  # replica -> calls answered 200
    failures: list[str] = field(default_factory=list)
    # (replica, kid) -> when a JWKS document from that replica first listed the kid
    jwks_first: dict[tuple[str, str], float] = field(default_factory=dict)

    def fail(self, text: str) -> None:
        with self.lock:
            self.failures.append(text)


def load_worker(
    index: int, replicas: dict[str, HubProcess], vendor: dict[str, str], record: Record,
    stop: threading.Event,
) -> None:  # fmt: skip
    """Fetch a fresh token, call the route with it on every replica; until ``stop``."""
    names = sorted(replicas)
    minter = replicas[names[index % len(names)]]
    auth = (vendor["client_id"], vendor["client_secret"])
    with httpx.Client(timeout=TIMEOUT) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                answer = client.post(
                    f"{minter.url}/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=auth,
                )
            except httpx.HTTPError as exc:
                record.fail(f"token request: {type(exc).__name__}: {exc}")
                continue
            received = time.monotonic()
            if answer.status_code != 200:
                record.fail(f"token request: HTTP {answer.status_code}: {answer.text[:200]}")
                continue
            token = answer.json()["access_token"]
            kid = jwt.get_unverified_header(token)["kid"]
            with record.lock:
                record.tokens.append((sent, received, kid))
            for name in names:
                call_sent = time.monotonic()
                try:
                    response = client.get(
                        f"{replicas[name].url}{ROUTE}",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.HTTPError as exc:
                    record.fail(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    record.fail(
                        f"{name}: HTTP {response.status_code} for a token signed by {kid}: "
                        f"{response.text[:200]}"
                    )
                    continue
                call_received = time.monotonic()
                principal = [
                    value
                    for key, value in response.json()["headers"]
                    if key.lower() == "x-hub-principal-token"
                ]
                if len(principal) != 1:
                    record.fail(f"{name}: the upstream got {len(principal)} principal tokens")
                    continue
                internal_kid = jwt.get_unverified_header(principal[0])["kid"]
                with record.lock:
                    record.calls[name] = record.calls.get(name, 0) + 1
                    record.internal.append((call_sent, call_received, internal_kid))
                    record.internal_samples.setdefault(internal_kid, principal[0])


def jwks_watcher(replicas: dict[str, HubProcess], record: Record, stop: threading.Event) -> None:
    """Note when each replica's JWKS first lists each kid."""
    with httpx.Client(timeout=TIMEOUT) as client:
        while not stop.is_set():
            for name, replica in replicas.items():
                try:
                    response = client.get(f"{replica.url}/.well-known/jwks.json")
                except httpx.HTTPError as exc:
                    record.fail(f"jwks of {name}: {type(exc).__name__}: {exc}")
                    continue
                seen = time.monotonic()
                with record.lock:
                    for key in response.json()["keys"]:
                        record.jwks_first.setdefault((name, key["kid"]), seen)
            stop.wait(0.05)


def start_load(
    replicas: dict[str, HubProcess], vendor: dict[str, str], record: Record, stop: threading.Event
) -> list[threading.Thread]:
    """The JWKS watcher and the worker threads, started."""
    threads = [threading.Thread(target=jwks_watcher, args=(replicas, record, stop), daemon=True)]
    threads += [
        threading.Thread(target=load_worker, args=(i, replicas, vendor, record, stop), daemon=True)
        for i in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    return threads


def check_rotation(
    record: Record, replicas: dict[str, HubProcess], *, rotation: Rotation, old_kids: set[str],
    seen: list[tuple[float, float, str]], what: str,
) -> None:  # fmt: skip
    """The new key was published everywhere before it signed, and signs once it is due."""
    new_kid = rotation.kid
    assert new_kid not in old_kids
    signed = [received for _sent, received, kid in seen if kid == new_kid]
    assert signed, f"no {what} token was signed by the new key {new_kid}"
    first_signed = min(signed)
    for name in replicas:
        published = record.jwks_first.get((name, new_kid))
        assert published is not None, f"{name}'s JWKS never listed the new {what} key"
        assert published < first_signed, (
            f"{name}'s JWKS listed the new {what} key {published - first_signed:+.3f}s after "
            "a token signed by it was seen"
        )
    # The new key activates PUBLISH_SECONDS after it was created, before the command ended.
    due = rotation.ended + PUBLISH_SECONDS + CLOCK_SLACK
    late = [kid for sent, _received, kid in seen if sent >= due]
    assert late, f"the load stopped before the new {what} key was due"
    assert set(late) == {new_kid}, f"{what} tokens after the publish delay: {set(late)}"
    before = {kid for _sent, received, kid in seen if received < rotation.started}
    assert before, f"no {what} token was seen before the rotation"
    assert before <= old_kids, f"{what} tokens before the rotation: {before}"


def test_no_valid_token_is_refused_while_keys_rotate_on_two_replicas(
    tmp_path: Path, database_url: str, upstream: UpstreamServer
) -> None:
    policies = write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=[
            {
                "id": "read",
                "prefix": "/api/read/",
                "upstream": "svc",
                "strip_prefix": True,
                "auth": {"methods": ["jwt"], "scopes": ["svc.read"]},
            }
        ],
    )
    settings = {
        "HUB_DATABASE_URL": database_url,
        "HUB_ISSUER": ISSUER,
        "HUB_KEY_PUBLISH_SECONDS": str(PUBLISH_SECONDS),
        "HUB_CONFIG_POLL_SECONDS": "0.5",  # the poll also reloads the key ring
        "HUB_ACCESS_LOG": "false",
    }
    with contextlib.ExitStack() as stack:
        # SQLite is migrated by the hub itself at start; PostgreSQL needs `hub migrate` first.
        migrate = not database_url.startswith("sqlite")
        first = stack.enter_context(run_hub(tmp_path, policies, env=settings, migrate=migrate))
        cli_env = hub_env(tmp_path, policies, first.port, extra=settings)

        # The commands start while the second replica does: each is a Python start-up.
        def command(*args: str, primed: bool = False) -> HubCommand:
            started = HubCommand(cli_env, tmp_path, *args, primed=primed)
            stack.callback(started.kill)
            return started

        create = command(
            "clients", "create", "--name", "HR suite", "--owner", "acme", "--scopes", "svc.read"
        )
        rotate_access = command("keys", "rotate", "--use", "access", primed=True)
        rotate_internal = command("keys", "rotate", "--use", "internal", primed=True)
        second = stack.enter_context(run_hub(tmp_path, policies, env=settings, migrate=False))
        created = create.output()
        vendor = {
            "client_id": field_of(created, "client_id"),
            "client_secret": field_of(created, "client_secret"),
        }
        rotate_access.wait_primed()
        rotate_internal.wait_primed()
        replicas = {"first": first, "second": second}
        old_jwks = httpx.get(f"{first.url}/.well-known/jwks.json", timeout=TIMEOUT).json()
        old_kids = {key["kid"] for key in old_jwks["keys"]}

        record, stop = Record(), threading.Event()
        threads = start_load(replicas, vendor, record, stop)
        try:
            # The load must be under way before the rotation, however slow the machine is.
            wait_for_load(record, LEAD_SECONDS)
            access = rotated(rotate_access, rotate_access.go())
            internal = rotated(rotate_internal, rotate_internal.go())
            # Until both new keys have been signing for TAIL_SECONDS.
            due = max(access.ended, internal.ended) + PUBLISH_SECONDS + CLOCK_SLACK
            time.sleep(max(0.0, due + TAIL_SECONDS - time.monotonic()))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in threads), "a load thread is stuck"

        assert not record.failures, (
            f"{len(record.failures)} failures, the first ones:\n" + "\n".join(record.failures[:10])
        )
        assert len(record.tokens) >= 50, f"too little load: {len(record.tokens)} tokens"
        assert record.calls["first"] == record.calls["second"] == len(record.tokens)
        check_rotation(
            record, replicas, rotation=access, old_kids=old_kids, seen=record.tokens,
            what="access",
        )  # fmt: skip
        check_rotation(
            record, replicas, rotation=internal, old_kids=old_kids, seen=record.internal,
            what="internal",
        )  # fmt: skip

        # The retired keys stay published for the tokens they signed: an upstream service
        # verifies principal tokens of both generations with the JWKS it fetches now.
        assert len(record.internal_samples) == 2  # the old internal key and the new one
        for replica in replicas.values():
            document: dict[str, Any] = httpx.get(
                f"{replica.url}/.well-known/jwks.json", timeout=TIMEOUT
            ).json()
            assert old_kids | {access.kid, internal.kid} <= {key["kid"] for key in document["keys"]}
            verifier = InternalTokenVerifier(load_jwks(document).get, issuer=ISSUER, audience="svc")
            for token in record.internal_samples.values():
                assert verifier.verify(token).client_id == vendor["client_id"]
