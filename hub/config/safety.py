"""Checks run before a valid document replaces the active one: is it safe to publish?

Unlike :mod:`hub.config.validate` these are not about whether a document makes sense but about
what publishing it would do, so they run at validate and publish time only, never when a stored
version is loaded (an old version must stay loadable for a rollback):

- **Emptying the hub.** A document without a single route, replacing an active version that
  has routes, would turn every API off at once: refused unless the caller says
  ``allow_empty``.
- **A policy that denies everything.** The admin API (``/admin/api``) is served by the hub
  itself, never through the gateway, so no permission can lock admins out of it; what a
  permission *can* do is lock everyone, admins included, out of the routes it covers. A
  permission without any allow rule, or with a deny rule that matches every request (no
  subjects, no conditions, and resources covering all its routes and methods), denies every
  request to its routes. That is refused with the path of the rule (or rules) at fault: to
  close a route, remove it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hub.config._issues import Issue, JsonPath, section_items
from hub.config.validate import STANDARD_METHODS
from hub.errors import ConfigError, EmptyConfiguration

__all__ = ["EMPTY_REASON", "check_publishable", "deny_all_issues", "empty_issue"]

EMPTY_REASON = (
    "the document has no routes: publishing it would remove all {count} route(s) of the active"
    " version {version}; send allow_empty: true to publish it anyway"
)
_EVERYONE = frozenset({"client", "person", "api_key", "anonymous"})


def _route_count(raw: Mapping[str, Any] | None) -> int:
    routes = raw.get("routes") if raw is not None else None
    return len(routes) if isinstance(routes, list) else 0


def empty_issue(
    raw: Mapping[str, Any], active: Mapping[str, Any] | None, active_version: int | None
) -> Issue | None:
    """The finding when ``raw`` would remove every route of the active document."""
    count = _route_count(active)
    if _route_count(raw) or not count:
        return None
    return Issue(path=("routes",), reason=EMPTY_REASON.format(count=count, version=active_version))


def deny_all_issues(raw: Mapping[str, Any]) -> list[Issue]:
    """Every permission that denies each request to every route it covers."""
    routes: dict[str, frozenset[str]] = {}
    products: dict[str, set[str]] = {}
    for _, item in section_items(raw, "routes"):
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        methods = item.get("methods")
        accepted = {m.upper() for m in methods if isinstance(m, str)} if methods else set()
        routes[ident] = frozenset(accepted or STANDARD_METHODS)
        if isinstance(item.get("product"), str):
            products.setdefault(item["product"], set()).add(ident)
    issues: list[Issue] = []
    for index, permission in section_items(raw, "permissions"):
        covered = {r for r in permission.get("routes") or [] if r in routes}
        for product in permission.get("products") or []:
            covered |= products.get(product, set()) if isinstance(product, str) else set()
        issues.extend(_permission(("permissions", index), permission, covered, routes))
    return issues


def _permission(
    at: JsonPath,
    permission: Mapping[str, Any],
    covered: set[str],
    routes: Mapping[str, frozenset[str]],
) -> Iterator[Issue]:
    if not covered:
        return
    ident = permission.get("id")
    shown = ", ".join(sorted(covered))
    rules = list(section_items(permission, "rules"))
    if rules and not any(rule.get("effect") == "allow" for _, rule in rules):
        yield Issue(
            path=(*at, "rules"),
            reason=f"permission {ident!r} has no allow rule, so it denies every request to"
            f" {shown}: a policy that denies everything is refused (remove the routes to close"
            " them)",
        )
        return
    for index, rule in rules:
        if rule.get("effect") == "deny" and _matches_everything(rule, covered, routes):
            yield Issue(
                path=(*at, "rules", index),
                reason=f"deny rule {rule.get('id')!r} matches every request, so permission"
                f" {ident!r} denies everything on {shown}: a policy that denies everything is"
                " refused (remove the routes to close them)",
            )


def _matches_everything(
    rule: Mapping[str, Any], covered: set[str], routes: Mapping[str, frozenset[str]]
) -> bool:
    if rule.get("conditions"):
        return False
    subjects = rule.get("subjects")
    if isinstance(subjects, dict):
        for key, value in subjects.items():
            if not value:
                continue
            if key == "kinds" and set(value) >= _EVERYONE:
                continue
            return False
    resources = rule.get("resources")
    if not isinstance(resources, dict):
        return True
    named = set(resources.get("routes") or []) or covered
    if not covered <= named:
        return False
    methods = {m for m in resources.get("methods") or [] if isinstance(m, str)}
    if not methods:
        return True
    if "GET" in methods:
        methods.add("HEAD")
    return all(routes[r] <= methods for r in covered)


def check_publishable(
    raw: Mapping[str, Any],
    *,
    active: Mapping[str, Any] | None,
    active_version: int | None,
    allow_empty: bool,
) -> None:
    """Raise unless a valid ``raw`` is safe to make active in place of ``active``."""
    issues = deny_all_issues(raw)
    if issues:
        raise ConfigError([str(issue) for issue in issues])
    empty = None if allow_empty else empty_issue(raw, active, active_version)
    if empty is not None:
        raise EmptyConfiguration([str(empty)])
