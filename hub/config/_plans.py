"""The semantic checks of plans and of products' subscription blocks.

What the schema cannot say: duplicate plan ids; a product offering (or defaulting to) a plan
that does not exist; a product that requires a subscription but offers no plan to subscribe
under; a default plan on a product that requires a subscription (it could never apply); the
versions of one product disagreeing on how to subscribe to it (a subscription covers every
version of its product); a plan's override for a product that is not declared, or on which the
plan can never apply; a daily quota above the monthly one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hub.config._issues import Issue, JsonPath, section_items

__all__ = ["plan_issues"]


def plan_issues(raw: Mapping[str, Any]) -> list[Issue]:
    """Every finding about plans and subscriptions in a merged document."""
    issues: list[Issue] = []
    plans: dict[str, int] = {}
    for index, item in section_items(raw, "plans"):
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        if ident in plans:
            issues.append(
                Issue(
                    path=("plans", index, "id"),
                    reason=f"duplicate plan id {ident!r}"
                    f" (first defined at $.plans[{plans[ident]}])",
                )
            )
        else:
            plans[ident] = index

    # product id -> plans it offers or defaults to; the first version's block and its index
    usable: dict[str, set[str]] = {}
    first_block: dict[str, tuple[int, Any]] = {}
    for index, item in section_items(raw, "products"):
        product = item.get("id")
        if not isinstance(product, str):
            continue
        block = item.get("subscription")
        usable.setdefault(product, set())
        if product in first_block:
            seen_at, seen = first_block[product]
            if block != seen:
                issues.append(
                    Issue(
                        path=("products", index, "subscription"),
                        reason=f"differs from the subscription of product {product!r} at"
                        f" $.products[{seen_at}]: a subscription covers every version of its"
                        " product, so they must agree",
                    )
                )
        else:
            first_block[product] = (index, block)
        if isinstance(block, dict):
            at: JsonPath = ("products", index, "subscription")
            issues.extend(_subscription_issues(at, block, plans, usable[product]))

    for index, item in section_items(raw, "plans"):
        at = ("plans", index)
        quota = item.get("quota")
        if isinstance(quota, dict):
            issues.extend(_quota_issues((*at, "quota"), quota, {}))
        overrides = item.get("overrides")
        if not isinstance(overrides, dict):
            continue
        ident = item.get("id")
        for product, override in overrides.items():
            where: JsonPath = (*at, "overrides", product)
            if product not in usable:
                issues.append(
                    Issue(path=where, reason=f"product {product!r} is not declared in products")
                )
            elif isinstance(ident, str) and ident not in usable[product]:
                issues.append(
                    Issue(
                        path=where,
                        reason=f"product {product!r} neither offers plan {ident!r} nor has it"
                        " as default_plan, so this override can never apply",
                    )
                )
            if isinstance(override, dict) and isinstance(override.get("quota"), dict):
                inherited = quota if isinstance(quota, dict) else {}
                issues.extend(_quota_issues((*where, "quota"), override["quota"], inherited))
    return issues


def _subscription_issues(
    at: JsonPath, block: Mapping[str, Any], plans: Mapping[str, int], usable: set[str]
) -> Iterator[Issue]:
    offered = block.get("plans")
    names: list[str] = []
    if isinstance(offered, list):
        for position, name in enumerate(offered):
            if not isinstance(name, str):
                continue
            if name in names:
                yield Issue(path=(*at, "plans", position), reason=f"plan {name!r} is listed twice")
            elif name not in plans:
                yield Issue(path=(*at, "plans", position), reason=f"{name!r} is not a defined plan")
            names.append(name)
    usable.update(names)
    required = block.get("required") is True
    if required and not names:
        yield Issue(
            path=(*at, "plans"),
            reason="the product requires a subscription but offers no plan to subscribe under",
        )
    default = block.get("default_plan")
    if isinstance(default, str):
        usable.add(default)
        if default not in plans:
            yield Issue(path=(*at, "default_plan"), reason=f"{default!r} is not a defined plan")
        if required:
            yield Issue(
                path=(*at, "default_plan"),
                reason="a product that requires a subscription has no callers without one,"
                " so its default_plan can never apply",
            )


def _quota_issues(
    at: JsonPath, quota: Mapping[str, Any], inherited: Mapping[str, Any]
) -> Iterator[Issue]:
    daily = quota.get("daily", inherited.get("daily"))
    monthly = quota.get("monthly", inherited.get("monthly"))
    if (
        isinstance(daily, int)
        and isinstance(monthly, int)
        and not isinstance(daily, bool)
        and not isinstance(monthly, bool)
        and daily > monthly
    ):
        yield Issue(
            path=at,
            reason=f"the daily quota ({daily}) exceeds the monthly quota ({monthly}),"
            " so it can never be reached",
        )
