"""The hub's live state: back-end clients, upstream pools, and the active configuration snapshot.

Created once per process, started and closed by the app's lifespan. It owns every long-lived
client (database engine, Redis, AMQP, aiohttp sessions) and hands them to their users.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx
import structlog

from hub.auth.apikeys import ApiKeyVerifier
from hub.auth.authenticator import Authenticator
from hub.auth.internal import InternalTokenSigner
from hub.auth.jwks import JwksCache
from hub.auth.principal import Principal
from hub.auth.verify import IssuerConfig, TokenVerifier
from hub.backends.ephemeral.base import EphemeralStore
from hub.backends.events.base import EventBus
from hub.backends.factory import (
    build_ephemeral_store,
    build_event_bus,
    build_limiter,
    build_notifier,
)
from hub.backends.notifier.base import ConfigNotifier
from hub.config.diff import diff_documents
from hub.config.loader import document_from_raw, load_directory
from hub.config.model import AuthSpec, ConfigDocument
from hub.config.safety import check_publishable
from hub.config.snapshot import Snapshot, compile_snapshot
from hub.db.config_store import ConfigStore, Review, StoredVersion
from hub.db.draft_store import DraftStore
from hub.db.engine import create_engine, ping
from hub.db.identity_store import (
    ApiKeyRecord,
    ApiKeyStore,
    AssertionLedger,
    ClientStore,
    ConsentStore,
    KeyStore,
    RefreshTokenStore,
    RevocationStore,
)
from hub.db.migrate import current_revision, head_revision, migrate
from hub.db.person_store import PersonStore
from hub.errors import BackendUnavailable, ConfigError, HubError
from hub.identity.authz_request import AuthorizationRequests
from hub.identity.keys import KeyRing
from hub.identity.lockout import LoginThrottle
from hub.identity.passwords import PasswordHasher
from hub.identity.sessions import SessionManager, cookie_name
from hub.ops.metrics import Metrics
from hub.ratelimit.base import RateLimitStore
from hub.settings import Settings
from hub.upstream.breaker import BreakerState
from hub.upstream.pool import Target
from hub.upstream.registry import UpstreamRegistry

__all__ = ["IdentityStores", "LocalRevocations", "ReadinessCheck", "Runtime"]

log = structlog.get_logger("hub.runtime")


class LocalRevocations(RevocationStore):
    """The revocation store, also telling this process at once (others learn by polling)."""

    def __init__(self, engine: Any, on_revoke: Callable[[str], None]) -> None:
        super().__init__(engine)
        self._on_revoke = on_revoke

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        await super().revoke(jti, expires_at)
        self._on_revoke(jti)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityStores:
    """The identity tables, as the OAuth endpoints, the sign-in pages and the CLI use them."""

    keys: KeyStore
    clients: ClientStore
    api_keys: ApiKeyStore
    ledger: AssertionLedger
    revocations: RevocationStore
    persons: PersonStore
    refresh_tokens: RefreshTokenStore
    consents: ConsentStore


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadinessCheck:
    """One line of ``/readyz``."""

    name: str
    ok: bool
    detail: str = ""


def _tune_gc() -> None:
    """Keep the cyclic collector off the hot path (measured in bench/: +10% req/s, lower p99).

    Everything built at start-up is moved out of the collector's sight (``gc.freeze``), and
    young collections run after 20,000 allocations instead of 700: a proxied request makes
    few long-lived cycles, so the scans mostly find nothing.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


def _publish_review(document: ConfigDocument, *, allow_empty: bool) -> Review:
    """Refuse an unsafe replacement of the active version; else the diff summary to audit."""

    def review(active: StoredVersion | None) -> dict[str, Any]:
        before = active.document if active is not None else None
        check_publishable(
            document.raw,
            active=before,
            active_version=active.version if active is not None else None,
            allow_empty=allow_empty,
        )
        return diff_documents(before, document.raw).summary()

    return review


class Runtime:
    """Everything the hub keeps alive between requests."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._snapshot: Snapshot | None = None
        self.draining = False
        self.registry = UpstreamRegistry(on_breaker_change=self._breaker_changed)
        self.engine: Any = None
        self.store: ConfigStore | None = None
        self.drafts: DraftStore | None = None
        self.notifier: ConfigNotifier | None = None
        self.events: EventBus | None = None
        self.limiter: RateLimitStore | None = None
        self._reload_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.identity: IdentityStores | None = None
        self.keyring: KeyRing | None = None
        self._revoked: set[str] = set()
        self._http: httpx.AsyncClient | None = None
        self._jwks: JwksCache | None = None
        self._api_keys: ApiKeyVerifier | None = None
        self._signer: InternalTokenSigner | None = None
        self._authenticator: Authenticator | None = None
        # SSO state. The ephemeral store's client connects lazily, so everything built on it
        # exists from construction on; start() checks it and aclose() releases it.
        self.ephemeral: EphemeralStore = build_ephemeral_store(settings)
        self.sessions = SessionManager(
            self.ephemeral,
            idle_seconds=settings.session_idle_seconds,
            max_seconds=settings.session_max_seconds,
            cache_seconds=settings.session_cache_seconds,
        )
        self.authz_requests = AuthorizationRequests(self.ephemeral)
        self.passwords = PasswordHasher()
        self.login_throttle = LoginThrottle()

    def _breaker_changed(
        self, upstream_id: str, target: Target, old: BreakerState, new: BreakerState
    ) -> None:
        # The pool logs the transition itself; here it is counted.
        self.metrics.breaker_transitions.labels(upstream_id, target.origin, new.value).inc()

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    async def start(self) -> None:
        """Connect back-ends, load the active configuration, start background work."""
        settings = self.settings
        if settings.embedded_database:
            # Embedded runs just work: the SQLite schema is brought up to date on start.
            await migrate(settings.database_url)
        elif await current_revision(settings.database_url) != head_revision():
            raise BackendUnavailable("the database schema is not up to date: run `hub migrate`")
        self.engine = create_engine(settings.database_url)
        self.store = ConfigStore(self.engine)
        self.drafts = DraftStore(self.engine)
        self.limiter = build_limiter(
            settings,
            on_unavailable=lambda mode: self.metrics.limiter_unavailable.labels(mode).inc(),
            on_engaged=self.metrics.limiter_fallback_active.set,
        )
        self.notifier = build_notifier(settings)
        self.events = build_event_bus(settings)
        await self.notifier.start()
        await self.events.start()
        await self.ephemeral.start()
        await self._start_identity()
        try:
            await self._load_active(self.store)
        except ConfigError as exc:
            # Start-up ends here: name every finding plainly, not only inside a traceback.
            for issue in exc.issues:
                log.error("config.invalid", issue=issue)
            raise
        self.notifier.subscribe(self._on_announcement)
        self._poller = asyncio.create_task(self._poll(), name="hub-config-poll")
        _tune_gc()

    async def _start_identity(self) -> None:
        """Signing keys, the credential stores and the verifiers built on them."""
        settings = self.settings
        engine = self.engine
        self.identity = IdentityStores(
            keys=KeyStore(engine),
            clients=ClientStore(engine),
            api_keys=ApiKeyStore(engine),
            ledger=AssertionLedger(engine),
            revocations=LocalRevocations(engine, self._revoked.add),
            persons=PersonStore(engine),
            refresh_tokens=RefreshTokenStore(engine),
            consents=ConsentStore(engine),
        )
        self.keyring = await KeyRing.load(self.identity.keys, settings)
        self._revoked.update(await self.identity.revocations.active())
        # External issuers' JWKS: a low-volume call, so httpx (the proxy path uses aiohttp).
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
        self._jwks = JwksCache(self._http)
        self._api_keys = ApiKeyVerifier(
            self._api_key_record, cache_seconds=10, issuer=settings.issuer
        )
        self._signer = InternalTokenSigner(
            self._internal_key, issuer=settings.issuer, lifetime=settings.internal_token_seconds
        )

    async def _api_key_record(self, prefix: str) -> ApiKeyRecord | None:
        """An API key's record; a key of a disabled client reads as revoked when it was."""
        assert self.identity is not None
        record = await self.identity.api_keys.by_prefix(prefix)
        if record is None or record.client_id is None or record.revoked_at is not None:
            return record
        client = await self.identity.clients.get(record.client_id)
        if client is None or client.disabled_at is not None:
            revoked = client.disabled_at if client is not None else record.created_at
            return replace(record, revoked_at=revoked)
        return record

    def _internal_key(self) -> tuple[str, Any]:
        assert self.keyring is not None
        kid, key, _alg = self.keyring.signing_key("internal")
        return kid, key

    def _build_authenticator(self, document: ConfigDocument) -> Authenticator:
        assert self.keyring is not None
        settings = self.settings
        own = IssuerConfig(
            issuer=settings.issuer, audiences=(settings.audience,), algorithms=("RS256",)
        )
        external = [
            IssuerConfig(
                issuer=spec.issuer,
                audiences=spec.audiences,
                algorithms=spec.algorithms,
                jwks_uri=spec.jwks_uri,
                leeway=spec.leeway,
            )
            for spec in document.issuers
        ]
        tokens = TokenVerifier(
            [own, *external],
            local_issuer=settings.issuer,
            local_keys=self.keyring,
            jwks=self._jwks,
            is_revoked=self._revoked.__contains__,
        )
        return Authenticator(
            tokens=tokens,
            api_keys=self._api_keys,
            # Session callers are vouched for by the hub's issuer (always set from HUB_*).
            sessions=self.sessions if settings.issuer else None,
            session_cookie=cookie_name(settings.session_cookie_secure),
            issuer=settings.issuer,
        )

    async def authenticate(
        self, spec: AuthSpec, headers: Sequence[tuple[bytes, bytes]]
    ) -> Principal:
        """The verified caller of a route with an ``auth`` block (401/403 otherwise)."""
        assert self._authenticator is not None
        return await self._authenticator.authenticate(spec, headers)

    def forget_api_key(self, prefix: str) -> None:
        """Drop this replica's cached verification of an API key (it was revoked or rotated)."""
        if self._api_keys is not None:
            self._api_keys.invalidate(prefix)

    def internal_token(self, principal: Principal, audience: str) -> str:
        """The principal as a short-lived token signed by the hub, for one upstream."""
        assert self._signer is not None
        return self._signer.mint(principal, audience)

    async def _refresh_identity(self) -> None:
        """Other replicas' key rotations and revocations (the notifier is for configuration)."""
        assert self.identity is not None
        assert self.keyring is not None
        await self.keyring.refresh(self.identity.keys)
        self._revoked.clear()
        self._revoked.update(await self.identity.revocations.active())

    async def _load_active(self, store: ConfigStore) -> None:
        """Swap in the active version, seeding it from the policies folder on first start."""
        settings = self.settings
        active = await store.active()
        if active is None:
            document = load_directory(settings.policies_dir, contracts_dir=settings.contracts_dir)
            seeded = await store.seed_if_empty(
                document.raw,
                checksum=document.checksum,
                author="seed:policies",
                review=lambda _: diff_documents(None, document.raw).summary(),
            )
            active = seeded or await store.active()
            if active is None:  # pragma: no cover - seed_if_empty always leaves a version
                raise ConfigError(["no configuration version could be stored"])
            log.info(
                "config.seeded", version=active.version, source=str(settings.policies_dir.name)
            )
        await self._swap(active)

    async def aclose(self) -> None:
        """Stop background work and close every client, newest first."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.registry.aclose()
        if self._http is not None:
            await self._http.aclose()
        for closer in (self.notifier, self.events, self.limiter, self.ephemeral):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.aclose()
        if self.engine is not None:
            await self.engine.dispose()

    async def _swap(self, stored: StoredVersion) -> Snapshot:
        document = document_from_raw(stored.document, contracts_dir=self.settings.contracts_dir)
        authenticator = self._build_authenticator(document)
        pools = await self.registry.apply(document.upstreams)
        snapshot = compile_snapshot(stored.version, document, pools)
        self._authenticator = authenticator
        self._snapshot = snapshot  # the one atomic step: a single reference assignment
        self.metrics.config_version.set(stored.version)
        self.metrics.config_reloads.labels("ok").inc()
        log.info("config.active", version=stored.version, checksum=stored.checksum[:12])
        return snapshot

    async def reload(self) -> Snapshot | None:
        """Swap to the database's active version if it differs from the one in use."""
        assert self.store is not None
        async with self._reload_lock:
            active = await self.store.active()
            if active is None or (self._snapshot and active.version == self._snapshot.version):
                return self._snapshot
            try:
                return await self._swap(active)
            except HubError as exc:
                self.metrics.config_reloads.labels("failed").inc()
                log.error("config.reload_failed", version=active.version, error=str(exc))
                return self._snapshot

    async def _on_announcement(self, version: int) -> None:
        current = self._snapshot.version if self._snapshot else None
        if version != current:
            await self.reload()

    async def _poll(self) -> None:
        """Safety net under the notifier: a replica that missed a message catches up anyway."""
        assert self.store is not None
        while True:
            await asyncio.sleep(self.settings.config_poll_seconds)
            try:
                version = await self.store.active_version()
                if self._snapshot is not None and version not in (None, self._snapshot.version):
                    await self.reload()
                await self._refresh_identity()
            except HubError as exc:
                log.warning("config.poll_failed", error=str(exc))

    async def validate(self, raw: dict[str, Any], *, allow_empty: bool) -> ConfigDocument:
        """Validate a whole document and check it is safe to replace the active one with."""
        assert self.store is not None
        document = document_from_raw(raw, contracts_dir=self.settings.contracts_dir)
        _publish_review(document, allow_empty=allow_empty)(await self.store.active())
        return document

    async def publish(
        self,
        raw: dict[str, Any],
        *,
        author: str,
        comment: str,
        expected_active: int | None,
        allow_empty: bool = False,
        draft_id: int | None = None,
    ) -> StoredVersion:
        """Validate a whole document, store it as the new active version, and announce it.

        The safety checks and the audit's diff summary are computed under the store's lock,
        against the version actually being replaced; ``draft_id`` is deleted with the publish.
        """
        assert self.store is not None
        assert self.notifier is not None
        document = document_from_raw(raw, contracts_dir=self.settings.contracts_dir)
        stored = await self.store.publish(
            document.raw,
            checksum=document.checksum,
            author=author,
            comment=comment,
            expected_active=expected_active,
            review=_publish_review(document, allow_empty=allow_empty),
            draft_id=draft_id,
        )
        await self.reload()
        await self._announce(stored.version)
        return stored

    async def activate(
        self, version: int, *, author: str, expected_active: int | None, comment: str = ""
    ) -> StoredVersion:
        """Make an earlier (or later) stored version active again: rollback in one step.

        No safety check: every stored version was valid when published, and a rollback must
        always be one step. The audit records the diff from the version it replaces.
        """
        assert self.store is not None
        target = await self.store.get(version)
        stored = await self.store.activate(
            version,
            author=author,
            expected_active=expected_active,
            comment=comment,
            review=lambda active: diff_documents(
                active.document if active else None, target.document if target else {}
            ).summary(),
        )
        await self.reload()
        await self._announce(stored.version)
        return stored

    async def _announce(self, version: int) -> None:
        assert self.notifier is not None
        try:
            await self.notifier.publish(version)
        except BackendUnavailable as exc:
            # Stored and active here; other replicas pick it up by polling.
            log.warning("config.announce_failed", version=version, error=str(exc))

    async def readiness(self) -> list[ReadinessCheck]:
        """The state of every dependency, for ``/readyz``."""
        checks = [
            ReadinessCheck(
                name="config",
                ok=self._snapshot is not None,
                detail=f"version {self._snapshot.version}" if self._snapshot else "not loaded",
            )
        ]
        if self.draining:
            checks.append(ReadinessCheck(name="shutdown", ok=False, detail="draining"))
        probes: list[tuple[str, Any]] = [("database", lambda: ping(self.engine))]
        if self.settings.redis_url and self.limiter is not None:
            probes.append(("redis", self._limiter_probe))
        if self.settings.redis_url and self.notifier is not None:
            probes.append(("config_notifier", self.notifier.check))
        if self.settings.redis_url:
            probes.append(("ephemeral", self.ephemeral.check))
        if self.settings.amqp_url and self.events is not None:
            probes.append(("rabbitmq", self.events.check))
        for name, probe in probes:
            try:
                detail = await asyncio.wait_for(probe(), timeout=2.0)
                checks.append(ReadinessCheck(name=name, ok=True, detail=detail or ""))
            except (HubError, TimeoutError) as exc:
                checks.append(ReadinessCheck(name=name, ok=False, detail=str(exc) or "timed out"))
        return checks

    async def _limiter_probe(self) -> str:
        """Ready even without Redis: the limits fall back, and the detail says to what."""
        assert self.limiter is not None
        await self.limiter.check()
        if not self.limiter.in_fallback:
            return ""
        limits = self._snapshot.limits.values() if self._snapshot else ()
        modes = ", ".join(sorted({limit.fallback for limit in limits}))
        if not modes:
            return "redis unreachable; no route has a rate limit"
        return f"fallback: {modes} (redis unreachable)"
