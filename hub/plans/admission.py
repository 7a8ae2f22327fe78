"""The gateway's limits step: subscription, quota and rate, for one request.

After authentication the gateway asks :meth:`Admitter.admit`:

1. **Subscription.** On a route of a product with a ``subscription`` block, an application
   (a client, or an API key of one) is looked up in this replica's subscription cache. A
   product that requires a subscription refuses one without an active subscription with
   ``403 subscription_required`` (saying so when it is pending). An active subscription gives
   its plan's terms; an application without one gets the product's ``default_plan``, if any.
   People and anonymous callers are not subject to plans: the route's own limit applies.
2. **Quota** (the plan's daily and monthly requests per application and product): checked
   against the usage meter before the limiter, so a caller over quota spends no rate.
   ``429 quota_exceeded`` with ``Retry-After`` until the period resets.
3. **Rate.** The route's own limit (keyed by its ``key``) and the plan's rate (keyed per
   application and route) go to the limiter together: one ``hit`` or one ``hit_all``, so one
   round trip, and a refusal by either charges neither. ``429 rate_limited``.

The answer carries ``RateLimit-Policy`` listing every policy that applied (``route``, ``plan``,
``daily``, ``monthly``) and ``RateLimit`` naming the most restrictive one (the fewest requests
left; on a tie the longest wait), per draft-ietf-httpapi-ratelimit-headers.

Once the permission policy has allowed the request, :meth:`Admitter.commit` counts it in the
meter (checking the quota once more, with no await in between, so one replica never admits
past it). Refused requests are never counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from hub.auth.principal import Principal
from hub.config.model import RateLimitSpec, RouteSpec
from hub.config.snapshot import Snapshot
from hub.errors import QuotaExceeded, RateLimited, SubscriptionRequired
from hub.ops.metrics import Metrics
from hub.plans.book import ProductRules, Terms
from hub.plans.cache import SubscriptionCache
from hub.quota.meter import UsageMeter
from hub.quota.periods import Calendar, QuotaCheck, check_quota
from hub.ratelimit.base import Bucket, Decision, RateLimitStore

__all__ = ["Admission", "Admitter", "limit_subject"]

_APPLICATIONS = frozenset({"client", "api_key"})
_DAY_SECONDS = 86_400


def limit_subject(spec: RateLimitSpec | None, address: str, consumer: str | None) -> str:
    """Whose allowance a request spends: the route's, the consumer's, or the client address's."""
    kind = spec.key if spec is not None else "ip"
    if kind == "route":
        return "*"
    if kind == "consumer" and consumer is not None:
        return "c:" + consumer
    return "ip:" + address  # anonymous callers of a per-consumer limit are limited by address


@dataclass(frozen=True, slots=True, kw_only=True)
class _Item:
    """One policy for the headers: its quota ``q`` over window ``w``, ``r`` left, reset ``t``."""

    name: str
    q: int
    w: int
    r: int
    t: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """What admit decided: headers for the answer, and the usage commit must count."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    client_id: str | None = None
    product: str | None = None
    terms: Terms | None = None


_NOTHING = Admission()


def _rate_item(name: str, decision: Decision, period: float) -> _Item:
    return _Item(
        name=name,
        q=decision.limit,
        w=max(1, int(period)),
        r=decision.remaining,
        t=max(0, math.ceil(decision.reset_after - 1e-9)),
    )


def _quota_items(terms: Terms, check: QuotaCheck, now: datetime, calendar: Calendar) -> list[_Item]:
    items: list[_Item] = []
    if terms.daily is not None:
        items.append(
            _Item(
                name="daily",
                q=terms.daily,
                w=_DAY_SECONDS,
                r=check.remaining["daily"],
                t=calendar.seconds_until(now, "daily"),
            )
        )
    if terms.monthly is not None:
        items.append(
            _Item(
                name="monthly",
                q=terms.monthly,
                w=calendar.month_seconds(now),
                r=check.remaining["monthly"],
                t=calendar.seconds_until(now, "monthly"),
            )
        )
    return items


def _headers(items: list[_Item], binding: list[_Item] | None = None) -> list[tuple[str, str]]:
    """``RateLimit-Policy`` listing ``items``; ``RateLimit`` for the tightest of ``binding``
    (the policies that refused, when one did), the fewest left and then the longest wait."""
    if not items:
        return []
    tightest = min(binding or items, key=lambda item: (item.r, -item.t))
    return [
        ("RateLimit-Policy", ", ".join(f'"{i.name}";q={i.q};w={i.w}' for i in items)),
        ("RateLimit", f'"{tightest.name}";r={tightest.r};t={tightest.t}'),
    ]


class Admitter:
    """Subscription, quota and rate for each request; usage counted once it is admitted."""

    def __init__(
        self,
        *,
        limiter: RateLimitStore | None,
        subscriptions: SubscriptionCache,
        meter: UsageMeter,
        metrics: Metrics,
    ) -> None:
        self._limiter = limiter
        self._subscriptions = subscriptions
        self._meter = meter
        self._metrics = metrics
        self._calendar = Calendar()

    async def admit(
        self, snapshot: Snapshot, route: RouteSpec, principal: Principal, address: str
    ) -> Admission:
        """Refuse with 403/429 (or the limiter's 503), or the headers and what to count."""
        application = principal.client_id if principal.kind in _APPLICATIONS else None
        rules = snapshot.plans.for_route(route.id)
        limit = snapshot.limits.get(route.id)
        if rules is None and limit is None:
            # the common plain route: nothing to decide, at most usage to count
            if application is None or route.product is None:
                return _NOTHING
            return Admission(client_id=application, product=route.product)
        terms: Terms | None = None
        if rules is not None and principal.kind in _APPLICATIONS:
            terms = await self._terms(rules, application)
        items: list[_Item] = []
        if terms is not None and terms.has_quota and application is not None:
            assert rules is not None
            await self._meter.ensure(application, rules.product)
            now = self._meter.now()
            check = self._quota(application, rules.product, terms, now)
            items = _quota_items(terms, check, now, self._calendar)
            if not check.allowed:
                raise self._exceeded(rules.product, terms, check, now, items)
        buckets: list[Bucket] = []
        names: list[str] = []
        if limit is not None:
            consumer = (principal.client_id or principal.subject) if route.auth else None
            subject = limit_subject(route.rate_limit, address, consumer)
            buckets.append(Bucket(key=f"{route.id}:{subject}", limit=limit))
            names.append("route")
        if terms is not None and terms.rate is not None and application is not None:
            buckets.append(Bucket(key=f"{route.id}:plan:{application}", limit=terms.rate))
            names.append("plan")
        if buckets and self._limiter is not None:
            if len(buckets) == 1:
                decisions: tuple[Decision, ...] = (
                    await self._limiter.hit(buckets[0].key, buckets[0].limit),
                )
            else:
                # Without Redis the store applies each limit's fallback itself: a local
                # share, open, or LimiterUnavailable (503) when one fails closed.
                decisions = await self._limiter.hit_all(buckets)
            rate_items = [
                _rate_item(name, decision, bucket.limit.period)
                for name, decision, bucket in zip(names, decisions, buckets, strict=True)
            ]
            items = rate_items + items
            if not decisions[0].allowed:
                self._metrics.rate_limited.labels(route.id).inc()
                wait = max(d.retry_after for d in decisions)
                retry_after = str(max(1, math.ceil(wait - 1e-9)))
                refusing = [i for i, d in zip(rate_items, decisions, strict=True) if d.retry_after]
                raise RateLimited(
                    f"rate limit reached; retry in {retry_after} s",
                    headers={**dict(_headers(items, refusing)), "Retry-After": retry_after},
                )
        counted = application if route.product is not None else None
        return Admission(
            headers=_headers(items), client_id=counted, product=route.product, terms=terms
        )

    def commit(self, admission: Admission) -> None:
        """Count an admitted request (QuotaExceeded if the quota ran out meanwhile)."""
        if admission.client_id is None or admission.product is None:
            return
        now = self._meter.now()
        terms = admission.terms
        if terms is not None and terms.has_quota:
            check = self._quota(admission.client_id, admission.product, terms, now)
            if not check.allowed:
                items = _quota_items(terms, check, now, self._calendar)
                raise self._exceeded(admission.product, terms, check, now, items)
        self._meter.count(admission.client_id, admission.product, self._calendar.day(now))

    async def _terms(self, rules: ProductRules, application: str | None) -> Terms | None:
        """The plan terms of the calling application on the product (403 when it needs one)."""
        subscription = None
        if application is not None:
            subscription = await self._subscriptions.get(application, rules.product)
        if subscription is not None and subscription.status == "active":
            terms = rules.terms.get(subscription.plan)
            if terms is None:
                raise self._required(
                    rules,
                    f"the plan {subscription.plan!r} of subscription {subscription.id} is no"
                    " longer defined; an admin must move the subscription to another plan",
                    status="active",
                    subscription=subscription.id,
                )
            return terms
        if rules.required:
            if application is None:
                raise self._required(
                    rules,
                    "this API key belongs to no application, and product"
                    f" {rules.product!r} needs an application's subscription",
                    status="none",
                )
            if subscription is not None:
                raise self._required(
                    rules,
                    f"the subscription {subscription.id} of application {application!r} to"
                    f" product {rules.product!r} is pending an admin's approval",
                    status="pending",
                    subscription=subscription.id,
                )
            raise self._required(
                rules,
                f"application {application!r} has no active subscription to product"
                f" {rules.product!r}",
                status="none",
            )
        if rules.default_plan is not None and application is not None:
            return rules.terms.get(rules.default_plan)
        return None

    def _required(
        self, rules: ProductRules, detail: str, *, status: str, subscription: str | None = None
    ) -> SubscriptionRequired:
        self._metrics.subscription_required.labels(rules.product).inc()
        extra: dict[str, object] = {"product": rules.product, "subscription_status": status}
        if subscription is not None:
            extra["subscription"] = subscription
        return SubscriptionRequired(detail, extra=extra)

    def _quota(self, client_id: str, product: str, terms: Terms, now: datetime) -> QuotaCheck:
        used_day, used_month = self._meter.used(client_id, product, self._calendar.day(now))
        return check_quota(
            daily=terms.daily, monthly=terms.monthly, used_day=used_day, used_month=used_month
        )

    def _exceeded(
        self, product: str, terms: Terms, check: QuotaCheck, now: datetime, items: list[_Item]
    ) -> QuotaExceeded:
        period = check.exceeded
        assert period is not None
        cap = terms.daily if period == "daily" else terms.monthly
        retry_after = self._calendar.seconds_until(now, period)
        self._metrics.quota_exceeded.labels(product, period).inc()
        headers = dict(_headers(items, [i for i in items if i.name == period]))
        headers["Retry-After"] = str(retry_after)
        resets = datetime.fromtimestamp(now.timestamp() + retry_after, tz=now.tzinfo)
        return QuotaExceeded(
            f"the {period} quota of {cap} requests to product {product!r} is used up;"
            f" it resets in {retry_after} s",
            headers=headers,
            extra={
                "quota": period,
                "limit": cap,
                "plan": terms.plan,
                "resets_at": resets.isoformat(timespec="seconds"),
            },
        )
