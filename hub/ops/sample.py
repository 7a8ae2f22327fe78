"""The request sample: bounded, privacy-safe metadata of recent requests, for dry-runs.

On the hot path a sampled request costs one random draw and an append of references to a
bounded deque (:meth:`RequestSampler.offer`); no I/O, no hashing. Once a second a background
task turns what was appended into :class:`SampledRequest` records (pseudonymised, see
:mod:`hub.ops.pseudonym`) and pushes them in one batch to the ephemeral store: a Redis list
capped at ``HUB_SAMPLE_SIZE`` when Redis is configured, so an admin call on any replica reads
the whole fleet's sample; the in-process store otherwise. Records older than
``HUB_SAMPLE_MAX_AGE_SECONDS`` are ignored, and the list expires when no replica pushes.

A record keeps what a decision can look at, and nothing that identifies a person or carries a
secret: route id, method, host, the path with every segment the route did not name literally
pseudonymised, path parameters and query values pseudonymised, only the headers some
condition or route of the active configuration reads (pseudonymised; credentials and cookies
never), the principal's kind, client id, scopes, acr and roles with its subject and
establishment pseudonymised, the client address truncated plus pseudonymised, the decision,
the limit, the status and the configuration version. Never a body, a token or a cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

import structlog

from hub.auth.principal import Principal
from hub.backends.ephemeral.base import EphemeralStore
from hub.config.replay import Credential, Replayable, credential_of, describe_limit
from hub.config.snapshot import Snapshot
from hub.errors import BackendUnavailable
from hub.ops.pseudonym import Pseudonymiser, truncate_ip
from hub.policy.compile import Decision
from hub.routing.table import RouteMatch

__all__ = [
    "Observed",
    "RequestSampler",
    "SampledRequest",
    "observed_credential",
    "pseudonymised_path",
]

log = structlog.get_logger("hub.sample")

# Headers a record never keeps, whatever a condition reads.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_MAX_QUERY_NAMES = 16
_MAX_NAME = 64
_FLUSH_SECONDS = 1.0


class Observed(NamedTuple):
    """One request as the gateway saw it, by reference (built only when someone wants it)."""

    at: float
    request_id: str
    snapshot: Snapshot
    method: str
    host: str
    path: str
    headers: list[tuple[bytes, bytes]]
    query: bytes
    client_ip: str
    match: RouteMatch | None
    principal: Principal | None  # None: the route's credential check refused the request
    refusal: str | None  # the problem code the gateway answered, if any
    verdict: Decision | None
    status: int


def observed_credential(seen: Observed) -> tuple[Credential, Principal | None, str | None]:
    """The credential method, the principal and the failure code of an observed request."""
    route = seen.match.route if seen.match is not None else None
    who = seen.principal
    if route is not None and route.auth is not None and (who is None or who.kind == "anonymous"):
        return "failed", None, seen.refusal or "unauthorized"
    if who is None:
        return "none", None, None
    return credential_of(who), who, None


@dataclass(frozen=True, slots=True, kw_only=True)
class SampledRequest:
    """One pseudonymised record of the sample (see the module docstring)."""

    at: float
    request_id: str
    config_version: int
    kid: str
    method: str
    host: str
    path: str
    route: str | None
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    kind: str
    subject: str | None
    issuer: str
    client_id: str | None
    scopes: list[str]
    acr: str | None
    establishment: str | None
    roles: list[str]
    credential: str
    failure: str | None
    ip_network: str
    ip: str | None
    decision: str
    permission: str | None
    rule: str | None
    limit: str | None
    status: int
    # Affiliations: "<establishment>:<role or scope>" with the establishment pseudonymised, so a
    # member_of / delegated_by condition against a path parameter replays exactly.
    memberships: list[str] = field(default_factory=list)
    delegated_scopes: list[str] = field(default_factory=list)
    delegation: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Every field is JSON already: no deep copy (dataclasses.asdict) needed.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampledRequest | None:
        """The record, or ``None`` when ``data`` is not one (another release's, or damaged)."""
        try:
            return cls(
                **{
                    name: data[name]
                    for name in cls.__dataclass_fields__
                    if name in data or name not in _OPTIONAL
                }
            )
        except (KeyError, TypeError):
            return None

    def replayable(self, vocabulary: Mapping[str, str]) -> Replayable:
        """The request to decide, with the literals of the replaying documents restored."""

        def back(value: str | None) -> str | None:
            return None if value is None else vocabulary.get(value, value)

        def back_pairs(pairs: list[str]) -> frozenset[str]:
            return frozenset(
                f"{vocabulary.get(est, est)}:{rest}"
                for est, _, rest in (pair.partition(":") for pair in pairs)
            )

        path = "/".join(vocabulary.get(part, part) for part in self.path.split("/"))
        query = urlencode({name: back(value) for name, value in self.query.items()})
        headers = [
            (name.encode("latin-1"), str(back(value)).encode("latin-1", "replace"))
            for name, value in self.headers.items()
        ]
        principal: Principal | None = None
        if self.credential != "failed":
            principal = Principal(
                subject=back(self.subject) or "anonymous",
                kind=self.kind,  # type: ignore[arg-type]
                issuer=self.issuer,
                client_id=self.client_id,
                scopes=frozenset(self.scopes),
                acr=self.acr,
                establishment=back(self.establishment),
                delegation=back(self.delegation),
                roles=frozenset(self.roles),
                memberships=back_pairs(self.memberships),
                delegated_scopes=back_pairs(self.delegated_scopes),
                via_session=self.credential == "session",
            )
        restored_ip = back(self.ip)
        client_ip = restored_ip if restored_ip is not None and restored_ip != self.ip else ""
        return Replayable(
            method=self.method,
            host=self.host,
            path=path,
            headers=headers,
            query_string=query.encode("latin-1", "replace"),
            client_ip=client_ip or self.ip_network,
            now=self.at,
            principal=principal,
            credential=self.credential,  # type: ignore[arg-type]
            failure=self.failure,
            roles=frozenset(self.roles),
        )


_FIELDS = tuple(SampledRequest.__dataclass_fields__)
# Fields a record of an earlier release may lack: read with their defaults.
_OPTIONAL = frozenset({"memberships", "delegated_scopes", "delegation"})


def _pseudonymous_pairs(p: Pseudonymiser, pairs: Iterable[str]) -> list[str]:
    """``"<establishment>:<x>"`` pairs with the establishment pseudonymised, sorted."""
    return sorted(f"{p(est)}:{rest}" for est, _, rest in (pair.partition(":") for pair in pairs))


def _read_headers(raw: Mapping[str, Any]) -> frozenset[str]:
    """Header names a condition or a route of a document reads (never a credential)."""
    names: set[str] = set()
    for permission in raw.get("permissions") or ():
        for rule in permission.get("rules") or ():
            for condition in rule.get("conditions") or ():
                for side in (condition.get("attr"), condition.get("ref")):
                    if isinstance(side, str) and side.startswith("header."):
                        names.add(side.removeprefix("header.").lower())
    for route in raw.get("routes") or ():
        headers = route.get("headers") or {}
        names.update(str(name).lower() for name in headers)
    return frozenset(names - _SECRET_HEADERS)


def _literal_positions(match: RouteMatch | None) -> frozenset[int]:
    """Segment positions the route names literally (everything else is pseudonymised)."""
    if match is None:
        return frozenset()
    route = match.route
    template = route.path if route.path is not None else (route.prefix or "")
    parts = template.split("/")
    return frozenset(i for i, part in enumerate(parts) if part and not part.startswith("{"))


def pseudonymised_path(path: str, match: RouteMatch | None, pseudonymise: Pseudonymiser) -> str:
    """The path with every segment its route does not name literally pseudonymised."""
    literal = _literal_positions(match)
    return "/".join(
        part if not part or i in literal else pseudonymise(part)
        for i, part in enumerate(path.split("/"))
    )


class RequestSampler:
    """The bounded sample of this replica, pushed in batches to the fleet's list."""

    def __init__(
        self,
        store: EphemeralStore,
        *,
        key: str,
        size: int,
        max_age: float,
        rate: float,
        pseudonymiser: Pseudonymiser,
        on_recorded: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._key = key
        self.size = size
        self.max_age = max_age
        self.rate = rate if size > 0 else 0.0
        self.pseudonymise = pseudonymiser
        self._pending: deque[Observed] = deque(maxlen=max(1, size))
        self._on_recorded = on_recorded
        self._on_dropped = on_dropped
        self._clock = clock
        self._random = random.random
        self._task: asyncio.Task[None] | None = None
        self._headers: dict[int, frozenset[str]] = {}

    def draw(self) -> bool:
        """Whether this request goes into the sample (the hot path's only cost when it does not)."""
        rate = self.rate
        return rate >= 1.0 or (rate > 0.0 and self._random() < rate)

    def offer(self, seen: Observed) -> None:
        """Keep ``seen`` until the next flush; the oldest pending one goes if the deque is full."""
        pending = self._pending
        if len(pending) == pending.maxlen and self._on_dropped is not None:
            self._on_dropped(1)
        pending.append(seen)

    def start(self) -> None:
        if self._task is None and self.rate > 0:
            self._task = asyncio.create_task(self._flush_forever(), name="hub-sample-flush")

    async def aclose(self) -> None:
        """Stop the background task; what is pending goes in a last batch, if it can."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(BackendUnavailable):
            await self.flush()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            try:
                await self.flush()
            except BackendUnavailable as exc:
                log.warning("sample.flush_failed", error=str(exc))
            except Exception:
                log.exception("sample.flush_error")

    async def flush(self) -> int:
        """Pseudonymise what is pending and push it in one batch; how many records went."""
        if not self._pending:
            return 0
        batch = list(self._pending)
        self._pending.clear()
        records = [self.record(seen).to_json() for seen in batch]
        try:
            await self._store.append(self._key, records, cap=self.size, ttl=self.max_age)
        except BackendUnavailable:
            if self._on_dropped is not None:
                self._on_dropped(len(records))
            raise
        if self._on_recorded is not None:
            self._on_recorded(len(records))
        return len(records)

    async def records(self) -> list[SampledRequest]:
        """The fleet's sample, oldest first: this replica's pending requests flushed first."""
        await self.flush()
        raw = await self._store.items(self._key)
        oldest = self._clock() - self.max_age
        found: list[SampledRequest] = []
        for item in raw:
            record = SampledRequest.from_json(item)
            if record is not None and record.at >= oldest:
                found.append(record)
        return found[-self.size :] if self.size else []

    async def clear(self) -> None:
        """Forget the sample (the fleet's list and this replica's pending requests)."""
        self._pending.clear()
        await self._store.delete(self._key)

    def record(self, seen: Observed) -> SampledRequest:
        """The pseudonymised record of one observed request."""
        p = self.pseudonymise
        snapshot = seen.snapshot
        path = pseudonymised_path(seen.path, seen.match, p)
        credential, who, failure = observed_credential(seen)
        route = seen.match.route if seen.match is not None else None
        verdict = seen.verdict
        if verdict is not None:
            decision = "allow" if verdict.allowed else "deny"
        elif route is not None and failure is None and route.id not in snapshot.policies:
            decision = "not_covered"
        else:
            decision = "skipped"
        principal = who
        return SampledRequest(
            at=seen.at,
            request_id=seen.request_id,
            config_version=snapshot.version,
            kid=p.key_id,
            method=seen.method,
            host=seen.host,
            path=path,
            route=route.id if route is not None else None,
            params={k: p(v) for k, v in (seen.match.params if seen.match else {}).items()},
            query=self._query(seen.query),
            headers=self._kept_headers(snapshot, seen.headers),
            kind=principal.kind if principal is not None else "anonymous",
            subject=p.optional(principal.subject) if principal is not None else None,
            issuer=principal.issuer if principal is not None else "",
            client_id=principal.client_id if principal is not None else None,
            scopes=sorted(principal.scopes) if principal is not None else [],
            acr=principal.acr if principal is not None else None,
            establishment=p.optional(principal.establishment) if principal is not None else None,
            roles=sorted(principal.roles) if principal is not None else [],
            memberships=_pseudonymous_pairs(p, principal.memberships) if principal else [],
            delegated_scopes=(
                _pseudonymous_pairs(p, principal.delegated_scopes) if principal else []
            ),
            delegation=p.optional(principal.delegation) if principal is not None else None,
            credential=credential,
            failure=failure,
            ip_network=truncate_ip(seen.client_ip),
            ip=p(seen.client_ip) if seen.client_ip else None,
            decision=decision,
            permission=verdict.permission if verdict is not None else None,
            rule=verdict.rule if verdict is not None else None,
            limit=describe_limit(route.rate_limit) if route is not None else None,
            status=seen.status,
        )

    def _query(self, raw: bytes) -> dict[str, str]:
        if not raw:
            return {}
        parsed = parse_qs(raw.decode("latin-1"), keep_blank_values=True)
        kept: dict[str, str] = {}
        for name, values in parsed.items():
            if len(kept) == _MAX_QUERY_NAMES:
                break
            if len(name) <= _MAX_NAME:
                kept[name] = self.pseudonymise(values[0])
        return kept

    def _kept_headers(
        self, snapshot: Snapshot, headers: Iterable[tuple[bytes, bytes]]
    ) -> dict[str, str]:
        wanted = self._headers.get(snapshot.version)
        if wanted is None:
            wanted = _read_headers(snapshot.document.raw)
            self._headers = {snapshot.version: wanted}
        if not wanted:
            return {}
        kept: dict[str, str] = {}
        for name, value in headers:
            text = name.decode("latin-1")
            if text in wanted and text not in kept:
                kept[text] = self.pseudonymise(value.decode("latin-1"))
        return kept
