"""Subscribing vendor applications to products: the rules of the active configuration, the
state machine, and who to tell.

::

    create ──> pending ──approve──> active ──cancel──> cancelled
       │          │ └────reject───> rejected
       │          └──────cancel───> cancelled
       └─(product needs no approval)─> active
    change_plan: pending or active, to a plan the product offers

A product must have a ``subscription`` block offering the plan; a product with
``approval: true`` starts new subscriptions pending. Each change is recorded with its actor
(the admin API's ``admin-token`` / ``person:<id>``, or ``cli``), and ``on_change(client_id,
product)`` is called after it so this replica's gateway cache forgets the key at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from hub.config.validate import Issue
from hub.db.subscription_store import (
    Subscription,
    SubscriptionAction,
    SubscriptionStatus,
    SubscriptionStore,
)
from hub.errors import Conflict, InvalidRequest, NotFound
from hub.plans.book import PlanBook, ProductRules

__all__ = ["TRANSITIONS", "SubscriptionService", "in_use_issues"]

#: action -> (the states it may start from, the state it leads to; None keeps the state)
TRANSITIONS: Final[
    dict[str, tuple[tuple[SubscriptionStatus, ...], SubscriptionStatus | None, SubscriptionAction]]
] = {
    "approve": (("pending",), "active", "approved"),
    "reject": (("pending",), "rejected", "rejected"),
    "cancel": (("pending", "active"), "cancelled", "cancelled"),
    "change_plan": (("pending", "active"), None, "plan_changed"),
}


class SubscriptionService:
    """Subscriptions as admins change them, checked against the active plan book."""

    def __init__(
        self,
        store: SubscriptionStore,
        book: Callable[[], PlanBook],
        *,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self._store = store
        self._book = book
        self._on_change = on_change

    @property
    def store(self) -> SubscriptionStore:
        return self._store

    def rules(self, product: str) -> ProductRules:
        """The product's subscription rules; NotFound or InvalidRequest when it takes none."""
        book = self._book()
        rules = book.products.get(product)
        if rules is None:
            raise NotFound(
                f"product {product!r} takes no subscriptions: it is not in the active"
                " configuration, or has no subscription block"
            )
        return rules

    def check_plan(self, rules: ProductRules, plan: str) -> None:
        """NotFound for an undefined plan, InvalidRequest for one the product does not offer."""
        if plan not in self._book().plans:
            raise NotFound(f"plan {plan!r} is not defined in the active configuration")
        if not rules.offers(plan):
            offered = ", ".join(rules.offered) or "none"
            raise InvalidRequest(
                f"product {rules.product!r} does not offer plan {plan!r} (it offers: {offered})"
            )

    async def create(
        self, *, client_id: str, product: str, plan: str, actor: str, reason: str = ""
    ) -> Subscription:
        """Subscribe an application; pending when the product needs approval, else active."""
        rules = self.rules(product)
        self.check_plan(rules, plan)
        status: SubscriptionStatus = "pending" if rules.approval else "active"
        subscription = await self._store.create(
            client_id=client_id,
            product=product,
            plan=plan,
            status=status,
            actor=actor,
            reason=reason,
        )
        self._changed(subscription)
        return subscription

    async def approve(self, subscription_id: str, *, actor: str, reason: str = "") -> Subscription:
        return await self._move(subscription_id, "approve", actor=actor, reason=reason)

    async def reject(self, subscription_id: str, *, actor: str, reason: str) -> Subscription:
        if not reason.strip():
            raise InvalidRequest("a rejection needs a reason (the vendor is told)")
        return await self._move(subscription_id, "reject", actor=actor, reason=reason)

    async def cancel(self, subscription_id: str, *, actor: str, reason: str = "") -> Subscription:
        return await self._move(subscription_id, "cancel", actor=actor, reason=reason)

    async def change_plan(
        self, subscription_id: str, plan: str, *, actor: str, reason: str = ""
    ) -> Subscription:
        current = await self._store.get(subscription_id)
        if current is None:
            raise NotFound(f"subscription {subscription_id!r} does not exist")
        self.check_plan(self.rules(current.product), plan)
        if current.plan == plan:
            raise Conflict(f"subscription {subscription_id!r} is already on plan {plan!r}")
        return await self._move(
            subscription_id, "change_plan", actor=actor, reason=reason, plan=plan
        )

    async def _move(
        self, subscription_id: str, name: str, *, actor: str, reason: str, plan: str | None = None
    ) -> Subscription:
        allowed_from, status, action = TRANSITIONS[name]
        subscription = await self._store.change(
            subscription_id,
            action=action,
            allowed_from=allowed_from,
            status=status,
            plan=plan,
            actor=actor,
            reason=reason,
        )
        self._changed(subscription)
        return subscription

    def _changed(self, subscription: Subscription) -> None:
        if self._on_change is not None:
            self._on_change(subscription.client_id, subscription.product)


def in_use_issues(book: PlanBook, in_use: Mapping[tuple[str, str], int]) -> list[Issue]:
    """What a document would leave dangling: live subscriptions to a product that no longer
    takes subscriptions, or under a plan that is no longer defined (move them first)."""
    issues: list[Issue] = []
    for (product, plan), count in sorted(in_use.items()):
        if product not in book.products:
            issues.append(
                Issue(
                    path=("products",),
                    reason=f"product {product!r} has {count} pending or active subscription(s)"
                    " but would take no subscriptions; cancel them first",
                )
            )
        elif plan not in book.plans:
            issues.append(
                Issue(
                    path=("plans",),
                    reason=f"plan {plan!r} is used by {count} pending or active subscription(s)"
                    f" to product {product!r}; move them to another plan first",
                )
            )
    return issues
