"""Shared pieces of the benchmark: the payload, server processes, CPU and the machine, wrk."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BODY",
    "PAYLOAD",
    "Server",
    "Servers",
    "WrkResult",
    "cpu_ticks",
    "ensure_tools",
    "machine",
    "machine_busy",
    "parse_wrk",
    "run_wrk",
    "wait_for_quiet",
]

# The 206-byte JSON document every server in the benchmark answers with (the reference).
PAYLOAD: dict[str, Any] = {
    "id": "a3f1c2d4-5b6e-4f70-8a91-b2c3d4e5f607",
    "kind": "permit",
    "status": "approved",
    "holder": {"name": "A. Haddad", "nationality": "JO"},
    "occupation": {"code": "2512", "title": "Developer"},
    "valid_until": "2027-03-31",
}
BODY: bytes = json.dumps(PAYLOAD, separators=(",", ":")).encode()
assert len(BODY) == 206, len(BODY)

_CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_PERCENT = 10.0  # --wait-quiet: below this (percent of one core) the machine counts as idle


# --- server processes -------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    """One server started in its own process group (session), logging to a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after ``grace`` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                # The leader may be gone while its workers linger: wait for the whole group.
                self.proc.poll()
                if not _group_alive(self.pgid):
                    return
                time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts for killpg; look for a live member.
    return any(pgrp == pgid and state != "Z" for pgrp, state, _ in _proc_stats())


_LIVE: list[Server] = []


def _stop_leftovers() -> None:
    for server in reversed(_LIVE):
        server.stop(grace=2.0)
    _LIVE.clear()


atexit.register(_stop_leftovers)


@dataclass(slots=True)
class Servers:
    """Starts servers pinned to a CPU and stops all of them, newest first, on exit."""

    log_dir: Path
    taskset: str | None
    started: list[Server] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpu: int | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Server:
        command = list(argv)
        if cpu is not None and self.taskset:
            command = [self.taskset, "-c", str(cpu), *command]
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                # Own session: Ctrl-C reaches only us, and we stop the whole group in order.
                start_new_session=True,
            )
        server = Server(name=name, proc=proc, log_path=log_path)
        self.started.append(server)
        _LIVE.append(server)
        return server

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self.started:
            server = self.started.pop()
            server.stop()
            with contextlib.suppress(ValueError):
                _LIVE.remove(server)


# --- CPU accounting and the machine -----------------------------------------------------------


def _proc_stats() -> list[tuple[int, str, int]]:
    """(process group, state, utime+stime ticks) for every process we can read."""
    rows: list[tuple[int, str, int]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                raw = handle.read().decode(errors="replace")
        except OSError:
            continue
        # Fields after "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt
        # majflt cmajflt utime stime ...; comm may hold spaces, so split after the last ")".
        fields = raw[raw.rfind(")") + 2 :].split()
        rows.append((int(fields[2]), fields[0], int(fields[11]) + int(fields[12])))
    return rows


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    with open("/proc/stat", "rb") as handle:
        fields = handle.readline().split()
    # cpu user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def cpu_ticks(pgids: Sequence[int]) -> float:
    """CPU seconds used so far by every live process in the given process groups."""
    wanted = set(pgids)
    return sum(ticks for pgrp, _, ticks in _proc_stats() if pgrp in wanted) / _CLK_TCK


def wait_for_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds for a second in which the machine is nearly idle.

    Returns how busy (percent of one core) the last sampled second was.
    """
    deadline = time.monotonic() + limit
    announced = False
    while True:
        busy, started = machine_busy(), time.monotonic()
        time.sleep(1.0)
        percent = 100 * (machine_busy() - busy) / (time.monotonic() - started)
        if percent < QUIET_PERCENT or time.monotonic() >= deadline:
            return percent
        if not announced:
            print(f"  (machine busy, {percent:.0f}% CPU: waiting for it to calm down)", flush=True)
            announced = True


def machine() -> dict[str, Any]:
    """The CPU model, core count and kernel, for the JSON record."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release()}


# --- wrk --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_second: float
    requests: int
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    cpu_seconds: float
    output: str


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")


def _ms(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str, cpu_seconds: float = 0.0) -> WrkResult:
    """Read req/s and the latency distribution from ``wrk --latency`` output."""
    percentiles: dict[str, float] = {}
    for match in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE):
        percentiles[match.group(1)] = _ms(match.group(2))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.MULTILINE)
    if rps is None or total is None or len(percentiles) < 4:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        max_ms=_ms(latency.group(1)) if latency else 0.0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors,
        cpu_seconds=cpu_seconds,
        output=output,
    )


def run_wrk(
    wrk: str,
    url: str,
    *,
    duration: int,
    connections: int,
    threads: int,
    cpu: int | None,
    taskset: str | None,
    headers: Sequence[str] = (),
) -> WrkResult:
    """Run wrk once (bounded by its own -d plus a margin) and parse what it printed."""
    command = [wrk, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s"]
    command += ["--latency", "--timeout", "5s"]
    for header in headers:
        command += ["-H", header]
    command.append(url)
    if cpu is not None and taskset:
        command = [taskset, "-c", str(cpu), *command]
    # wrk is the only child reaped while it runs, so the children's rusage delta is its CPU.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse_wrk(completed.stdout, cpu_seconds)


# --- tools ------------------------------------------------------------------------------------

# Debian package(s) to try, in order, for each tool the harness runs.
_PACKAGES: dict[str, tuple[str, ...]] = {"wrk": ("wrk",), "nginx": ("nginx-light", "nginx")}


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found is None:
        # /usr/sbin is not always on PATH for non-root shells, and nginx lives there.
        candidate = Path("/usr/sbin") / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found = str(candidate)
    return found


def _apt(args: Sequence[str], timeout: float) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"  $ apt-get {' '.join(args)}", flush=True)
    try:
        completed = subprocess.run(
            ["apt-get", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  apt-get failed: {exc}", file=sys.stderr)
        return False
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        print(f"  apt-get failed ({completed.returncode}):\n{tail}", file=sys.stderr)
        return False
    return True


@contextlib.contextmanager
def _no_service_start() -> Any:
    """Keep Debian maintainer scripts from starting nginx on port 80 while we install it."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\n# temporary, written by bench/run.py\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def ensure_tools(tools: Sequence[str], *, install: bool) -> dict[str, str | None]:
    """Path of each tool, installing missing ones from Debian packages when allowed."""
    found = {tool: _which(tool) for tool in tools}
    missing = [tool for tool, path in found.items() if path is None]
    if not missing:
        return found
    if not install:
        print(f"missing (not installing, --no-install): {', '.join(missing)}")
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"missing and cannot install (needs root and apt-get): {', '.join(missing)}")
        return found
    print(f"installing from Debian packages: {', '.join(missing)}", flush=True)
    with _no_service_start():
        if _apt(["update", "-q"], timeout=300):
            for tool in missing:
                for package in _PACKAGES[tool]:
                    if _apt(["install", "-y", "-q", "--no-install-recommends", package], 600):
                        print(f"  installed {package}")
                        break
    return {tool: _which(tool) for tool in tools}
