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
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from hub.adapters.registry import AdapterRegistry
from hub.adapters.routes import AdapterRoutes
from hub.audit.log import AuditLog
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
from hub.backends.notifier.base import RESYNC_SIGNAL, ConfigNotifier
from hub.callbacks.receipts import CallbackSource, ReceiptReceiver, unknown_adapter
from hub.config.diff import diff_documents
from hub.config.governance import check_approval, protected_changes
from hub.config.loader import document_from_raw, load_directory
from hub.config.model import AuthSpec, ConfigDocument, RouteSpec
from hub.config.safety import check_publishable
from hub.config.shadow import SIGNAL as SHADOW_SIGNAL
from hub.config.shadow import ShadowRunner
from hub.config.snapshot import Snapshot, compile_snapshot
from hub.db.approval_store import ApprovalStore
from hub.db.audit_store import AuditStore
from hub.db.callback_store import CallbackStore
from hub.db.config_store import ConfigStore, Protect, Review, StoredVersion
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
from hub.db.payment_store import PaymentStore
from hub.db.people_store import PeopleStores
from hub.db.person_store import PersonStore
from hub.db.shadow_store import ShadowStore
from hub.db.staff_store import StaffStore
from hub.db.subscription_store import SubscriptionStore
from hub.db.usage_store import UsageStore
from hub.db.webhook_store import WebhookStore
from hub.errors import AdapterUnavailable, BackendUnavailable, ConfigError, HubError
from hub.events.relay import OutboxRelay, RelayOptions
from hub.identity.authz_request import AuthorizationRequests
from hub.identity.directory import Directory
from hub.identity.keys import KeyRing
from hub.identity.lockout import LoginThrottle
from hub.identity.passwords import PasswordHasher
from hub.identity.sessions import SessionManager, cookie_name
from hub.ops.metrics import Metrics
from hub.ops.pseudonym import Pseudonymiser
from hub.ops.sample import RequestSampler
from hub.payments.api import PaymentRoutes
from hub.payments.events import emit as emit_payment_event
from hub.payments.service import Payments
from hub.payments.webhooks import DEFAULT_TOLERANCE, WebhookReceiver
from hub.plans.admission import Admission, Admitter
from hub.plans.book import PlanBook, compile_plans
from hub.plans.cache import SubscriptionCache
from hub.plans.subscriptions import SubscriptionService, in_use_issues
from hub.quota.meter import UsageMeter
from hub.ratelimit.base import RateLimitStore
from hub.settings import Settings
from hub.upstream.breaker import BreakerState
from hub.upstream.pool import Target
from hub.upstream.registry import UpstreamRegistry
from hub.webhooks.catalog import WebhookCatalog
from hub.webhooks.dispatcher import QUEUE as WEBHOOK_QUEUE
from hub.webhooks.dispatcher import WebhookDispatcher
from hub.webhooks.sealing import SecretSealer, load_or_create_key

__all__ = [
    "DIRECT_PUBLISH_ADVICE",
    "IdentityStores",
    "LocalRevocations",
    "ReadinessCheck",
    "Runtime",
]

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


#: Why a publish without an approval of a draft is refused, and what to do instead.
DIRECT_PUBLISH_ADVICE = (
    "publish it through a draft (POST /admin/api/config/drafts) that another admin approves"
)


def _approval_gate(document: ConfigDocument, *, approved_by: str | None, advice: str) -> Protect:
    """The protected items a change touches, to audit; without an approval, a refusal."""

    def protect(active: StoredVersion | None) -> list[dict[str, Any]] | None:
        before = active.document if active is not None else None
        return check_approval(before, document.raw, approved_by=approved_by, advice=advice)

    return protect


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
        self.approvals: ApprovalStore | None = None
        self.notifier: ConfigNotifier | None = None
        self.events: EventBus | None = None
        self.limiter: RateLimitStore | None = None
        # Plans and quotas (hub/plans, hub/quota): built on the engine in start().
        self.subscriptions: SubscriptionService | None = None
        self.usage: UsageStore | None = None
        self.meter: UsageMeter | None = None
        self._admitter: Admitter | None = None
        self._reload_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.identity: IdentityStores | None = None
        self.keyring: KeyRing | None = None
        self._revoked: set[str] = set()
        # Delegations revoked recently enough that tokens resting on them may still be live.
        self._revoked_delegations: set[str] = set()
        self.directory: Directory | None = None
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
        # Dry-run and shadow mode: one key for every pseudonym this process makes.
        self.pseudonyms = Pseudonymiser(settings.sample_key)
        self.sampler = RequestSampler(
            self.ephemeral,
            # One list per hub cluster, named like its config channel.
            key=f"sample:{settings.config_channel}",
            size=settings.sample_size,
            max_age=settings.sample_max_age_seconds,
            rate=settings.sample_rate,
            pseudonymiser=self.pseudonyms,
            on_recorded=metrics.sample_records.inc,
            on_dropped=metrics.sample_dropped.inc,
        )
        self.shadows: ShadowStore | None = None
        self.shadow = ShadowRunner(
            pseudonymiser=self.pseudonyms,
            queue_size=settings.shadow_queue_size,
            contracts_dir=settings.contracts_dir,
            on_state=lambda on: metrics.shadow_active.set(1 if on else 0),
            on_flushed=self._shadow_flushed,
            on_dropped=metrics.shadow_dropped.inc,
        )
        # Adapters to external systems: built from the active configuration at each swap, their
        # outbound quotas in the rate-limit store (which start() creates).
        self.adapters = AdapterRegistry(
            secrets=settings.adapter_secrets,
            contracts_dir=settings.contracts_dir,
            observer=metrics,
            limiter=lambda: self.limiter,
        )
        metrics.watch_adapters(self._adapter_states)
        self.audit: AuditLog | None = None
        self.adapter_routes: AdapterRoutes | None = None
        # Events: the relay of the hub's own outbox, and vendor webhooks.
        self.relay: OutboxRelay | None = None
        self.webhooks: WebhookStore | None = None
        self.webhook_sealer: SecretSealer | None = None
        self.webhook_catalog = WebhookCatalog.load(settings.contracts_dir)
        self.webhook_dispatcher: WebhookDispatcher | None = None
        self._webhook_http: httpx.AsyncClient | None = None
        self.payments: Payments | None = None
        self.payment_routes: PaymentRoutes | None = None
        # Notification providers' receipt callbacks (hub/callbacks).
        self.receipts: ReceiptReceiver | None = None

    def _shadow_flushed(self, compared: int, kinds: dict[str, int]) -> None:
        self.metrics.shadow_compared.inc(compared)
        for kind, count in kinds.items():
            if count:
                self.metrics.shadow_differences.labels(kind).inc(count)

    def _adapter_states(self) -> dict[str, tuple[str | None, int]]:
        return {
            name: (
                live.breaker_state.value if live.breaker_state is not None else None,
                live.client.bulkhead.in_flight if live.client is not None else 0,
            )
            for name, live in self.adapters.adapters.items()
        }

    def _webhook_secret(self, adapter: str) -> tuple[str, float]:
        """A payment adapter's webhook secret (named in its ``options``) and tolerance."""
        options = self.adapters.get(adapter).config.options
        name = str(options.get("webhook_secret", ""))
        secret = self.settings.adapter_secrets.get(name) if name else None
        if not secret:
            raise AdapterUnavailable(f"{adapter}: its webhook secret is not set")
        return secret, float(options.get("webhook_tolerance_seconds", DEFAULT_TOLERANCE))

    def _callback_source(self, adapter: str) -> CallbackSource:
        """A notification adapter's callback secret (named in its ``options``) and schema."""
        live = self.adapters.adapters.get(adapter)
        name = str(live.config.options.get("callback_secret", "")) if live else ""
        if live is None or not name:
            raise unknown_adapter(adapter)
        secret = self.settings.adapter_secrets.get(name)
        if not secret:
            raise AdapterUnavailable(f"{adapter}: its callback secret is not set")
        tolerance = float(live.config.options.get("callback_tolerance_seconds", DEFAULT_TOLERANCE))
        schema = self.settings.contracts_dir / live.config.contract / "receipt.schema.json"
        return CallbackSource(secret=secret, tolerance=tolerance, schema=schema)

    async def _staff_roles(self, principal: Principal) -> frozenset[str]:
        """A person caller's active staff roles (purposes may require one)."""
        roles = await StaffStore(self.engine).list(person_id=principal.subject, active_only=True)
        return frozenset(role.role for role in roles)

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
        self.audit = AuditLog(AuditStore(self.engine), timeout=settings.audit_timeout_seconds)
        self.adapter_routes = AdapterRoutes(self.adapters, self.audit, self._staff_roles)
        payment_store = PaymentStore(self.engine, events=emit_payment_event)
        self.payments = Payments(payment_store, self.adapters)
        self.payment_routes = PaymentRoutes(
            self.payments,
            WebhookReceiver(payment_store, self._webhook_secret),
            settings.contracts_dir,
        )
        self.receipts = ReceiptReceiver(
            CallbackStore(self.engine),
            self._callback_source,
            on_commit=lambda: self.relay.wake() if self.relay is not None else None,
        )
        self.approvals = ApprovalStore(self.engine)
        self.limiter = build_limiter(
            settings,
            on_unavailable=lambda mode: self.metrics.limiter_unavailable.labels(mode).inc(),
            on_engaged=self.metrics.limiter_fallback_active.set,
        )
        self._start_plans()
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
        self.shadows = ShadowStore(self.engine)
        self.shadow.attach(self.shadows)
        await self.shadow.refresh()
        self.notifier.subscribe_signals(self._on_signal)
        await self._start_events()
        self.shadow.start()
        self.sampler.start()
        self._poller = asyncio.create_task(self._poll(), name="hub-config-poll")
        _tune_gc()

    def _start_plans(self) -> None:
        """Subscriptions, the usage meter and the gateway's admission step on them."""
        settings, metrics = self.settings, self.metrics
        store = SubscriptionStore(self.engine)
        cache = SubscriptionCache(store.live, ttl=settings.subscription_cache_seconds)
        self.subscriptions = SubscriptionService(
            store,
            lambda: self._snapshot.plans if self._snapshot is not None else PlanBook(),
            on_change=cache.invalidate,
        )
        self.usage = UsageStore(self.engine)
        self.meter = UsageMeter(
            self.usage,
            flush_seconds=settings.usage_flush_seconds,
            on_flush=lambda outcome: metrics.usage_flushes.labels(outcome).inc(),
            on_pending=metrics.usage_pending.set,
        )
        self._admitter = Admitter(
            limiter=self.limiter, subscriptions=cache, meter=self.meter, metrics=metrics
        )
        self.meter.start()

    async def admit(
        self, snapshot: Snapshot, route: RouteSpec, principal: Principal, address: str
    ) -> Admission:
        """Subscription, quota and rate limits of one request (403/429/503, or its headers)."""
        assert self._admitter is not None
        return await self._admitter.admit(snapshot, route, principal, address)

    def count_usage(self, admission: Admission) -> None:
        """Count an admitted request towards its application's usage and quotas."""
        assert self._admitter is not None
        self._admitter.commit(admission)

    async def _start_events(self) -> None:
        """The outbox relay, and vendor webhooks when their secrets can be sealed."""
        settings = self.settings
        assert self.events is not None
        self.relay = OutboxRelay(
            self.engine,
            self.events,
            options=RelayOptions(poll_interval=settings.outbox_poll_seconds),
            observer=self.metrics.outbox,
        )
        self.relay.start()
        self.webhooks = WebhookStore(self.engine)
        key = settings.webhook_key
        if key is None and settings.embedded_database:
            key = load_or_create_key(settings.data_dir)
        if key is None:
            log.warning("webhooks.off", reason="HUB_WEBHOOK_KEY is not set")
            return
        self.webhook_sealer = SecretSealer(key)
        self._webhook_http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.webhook_timeout_seconds), follow_redirects=False
        )
        self.webhook_dispatcher = WebhookDispatcher(
            self.webhooks,
            catalog=self.webhook_catalog,
            sealer=self.webhook_sealer,
            http=self._webhook_http,
            max_attempts=settings.webhook_max_attempts,
            retry_seconds=settings.webhook_retry_seconds,
            on_outcome=lambda outcome: self.metrics.webhook_deliveries.labels(outcome).inc(),
        )
        # Namespaced like the exchanges: clusters sharing a RabbitMQ keep their queues apart.
        queue = settings.events_namespace + WEBHOOK_QUEUE.removeprefix("hub")
        await self.events.subscribe(queue, "#", self.webhook_dispatcher.on_event)
        self.webhook_dispatcher.start()

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
        self.directory = Directory(
            PeopleStores.on(engine), cache_seconds=settings.affiliation_cache_seconds
        )
        self._revoked_delegations.update(await self._recently_revoked_delegations())
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
            delegation_revoked=self._revoked_delegations.__contains__,
        )
        return Authenticator(
            tokens=tokens,
            api_keys=self._api_keys,
            # Session callers are vouched for by the hub's issuer (always set from HUB_*).
            sessions=self.sessions if settings.issuer else None,
            session_cookie=cookie_name(settings.session_cookie_secure),
            issuer=settings.issuer,
            affiliations=None if self.directory is None else self.directory.cached_person,
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

    def delegation_revoked(self, delegation_id: str) -> None:
        """Refuse, on this replica at once, every token resting on a just revoked delegation.

        Other replicas learn of it from the database within ``HUB_CONFIG_POLL_SECONDS``.
        """
        self._revoked_delegations.add(delegation_id)

    async def _recently_revoked_delegations(self) -> list[str]:
        # A token lives access_token_seconds; older revocations can no longer refuse anything.
        assert self.directory is not None
        since = datetime.now(UTC) - timedelta(seconds=self.settings.access_token_seconds + 60)
        return await self.directory.revoked_delegations(since)

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
        revoked = await self._recently_revoked_delegations()
        self._revoked_delegations.clear()
        self._revoked_delegations.update(revoked)

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
        for worker in (self.webhook_dispatcher, self.relay):
            if worker is not None:
                await worker.aclose()
        if self._webhook_http is not None:
            await self._webhook_http.aclose()
        await self.sampler.aclose()
        await self.shadow.aclose()
        if self.meter is not None:
            # the last counts go to the database before the engine goes (logged if they cannot)
            await self.meter.aclose()
        await self.registry.aclose()
        await self.adapters.aclose()
        if self.audit is not None:
            await self.audit.aclose()
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
        await self.adapters.apply(document.adapters)
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

    async def _on_signal(self, name: str) -> None:
        # The shadow signal, or a resync after missed announcements: re-read the run.
        if name in (SHADOW_SIGNAL, RESYNC_SIGNAL):
            await self.shadow.refresh()

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
                await self.shadow.refresh()
            except HubError as exc:
                log.warning("config.poll_failed", error=str(exc))

    async def validate(self, raw: dict[str, Any], *, allow_empty: bool) -> ConfigDocument:
        """Validate a whole document and check it is safe to replace the active one with."""
        assert self.store is not None
        document = document_from_raw(raw, contracts_dir=self.settings.contracts_dir)
        _publish_review(document, allow_empty=allow_empty)(await self.store.active())
        await self._check_plans_in_use(document)
        return document

    async def _check_plans_in_use(self, document: ConfigDocument) -> None:
        """Refuse a document that would strand live subscriptions (a rollback is not checked)."""
        assert self.subscriptions is not None
        issues = in_use_issues(compile_plans(document), await self.subscriptions.store.in_use())
        if issues:
            raise ConfigError([str(issue) for issue in issues])

    async def publish(
        self,
        raw: dict[str, Any],
        *,
        author: str,
        comment: str,
        expected_active: int | None,
        allow_empty: bool = False,
        draft_id: int | None = None,
        draft_revision: int | None = None,
        approved_by: str | None = None,
        approval_advice: str = DIRECT_PUBLISH_ADVICE,
    ) -> StoredVersion:
        """Validate a whole document, store it as the new active version, and announce it.

        The safety checks, the four-eyes check and the audit's diff summary are computed under
        the store's lock, against the version actually being replaced. A change touching
        protected configuration needs ``approved_by`` (a valid approval of ``draft_id`` at
        ``draft_revision``); without one it is refused with ``approval_advice``. The draft is
        deleted with the publish.
        """
        assert self.store is not None
        assert self.notifier is not None
        document = document_from_raw(raw, contracts_dir=self.settings.contracts_dir)
        await self._check_plans_in_use(document)
        stored = await self.store.publish(
            document.raw,
            checksum=document.checksum,
            author=author,
            comment=comment,
            expected_active=expected_active,
            review=_publish_review(document, allow_empty=allow_empty),
            draft_id=draft_id,
            draft_revision=draft_revision,
            protect=_approval_gate(document, approved_by=approved_by, advice=approval_advice),
            approved_by=approved_by,
        )
        if approved_by is not None:
            log.info(
                "config.published_with_approval",
                version=stored.version,
                draft=draft_id,
                revision=draft_revision,
                approved_by=approved_by,
                author=author,
            )
        await self.reload()
        await self._announce(stored.version)
        return stored

    async def activate(
        self, version: int, *, author: str, expected_active: int | None, comment: str = ""
    ) -> StoredVersion:
        """Make an earlier (or later) stored version active again: rollback in one step.

        No safety check and no four-eyes approval: every stored version passed the checks of
        its time when it was published, and a rollback must stay one step in an emergency. The
        audit records the diff from the version it replaces and the protected items it changed.
        """
        assert self.store is not None
        target = await self.store.get(version)
        after = target.document if target is not None else {}
        touched: list[dict[str, Any]] = []

        def protect(active: StoredVersion | None) -> list[dict[str, Any]] | None:
            items = protected_changes(active.document if active is not None else None, after)
            touched.extend(item.as_json() for item in items)
            return touched or None

        stored = await self.store.activate(
            version,
            author=author,
            expected_active=expected_active,
            comment=comment,
            review=lambda active: diff_documents(
                active.document if active else None, after
            ).summary(),
            protect=protect,
        )
        if touched:
            log.warning(
                "config.activated_protected",
                version=version,
                author=author,
                items=[f"{item['section']}/{item['id']}" for item in touched],
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
        if self.adapters.adapters:
            probes.append(("adapters", self._adapters_probe))
        for name, probe in probes:
            try:
                async with asyncio.timeout(2.0):
                    detail = await probe()
                checks.append(ReadinessCheck(name=name, ok=True, detail=detail or ""))
            except (HubError, TimeoutError) as exc:
                checks.append(ReadinessCheck(name=name, ok=False, detail=str(exc) or "timed out"))
        return checks

    async def _adapters_probe(self) -> str:
        """Adapters that could not be built are named, but keep the replica ready.

        One external system (or its missing secret) must not take the whole hub out of the
        load balancer: only its own routes answer 503 ``adapter_unavailable``.
        """
        broken = await self.adapters.readiness()
        count = f"{len(self.adapters.adapters)} adapter(s)"
        return f"{count}; unavailable: {broken}" if broken else count

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
