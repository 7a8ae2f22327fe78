"""Checks of the ``adapters`` and ``purposes`` sections, and of routes served by adapters.

What a schema cannot say: unique ids, a base URL the hub can call, a plugin that is installed and
has the operations routes and purposes name, fields a purpose may return that the operation
really has, and, with the contracts folder at hand, an ``api.yaml`` with an ``operation_id`` for
every operation of the plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters.base import Operation
from hub.adapters.plugins import load_plugin
from hub.config._issues import Issue, JsonPath, section_items
from hub.errors import AdapterUnavailable

__all__ = ["adapter_contract_issues", "adapter_issues", "adapter_operations"]

ContractReader = Callable[[Path, str], tuple[Any, list[str]]]


def adapter_operations(
    raw: Mapping[str, Any],
) -> dict[str, Mapping[str, Operation[Any, Any]] | None]:
    """Adapter id -> its plugin's operations (``None``: the plugin cannot be loaded)."""
    found: dict[str, Mapping[str, Operation[Any, Any]] | None] = {}
    for _, item in section_items(raw, "adapters"):
        ident, plugin = item.get("id"), item.get("plugin")
        if isinstance(ident, str) and isinstance(plugin, str) and ident not in found:
            try:
                found[ident] = load_plugin(plugin).operations
            except AdapterUnavailable:
                found[ident] = None
    return found


def adapter_issues(raw: Mapping[str, Any]) -> list[Issue]:
    """Every finding in the adapters and purposes sections and in adapter-served routes."""
    issues: list[Issue] = []
    adapters: dict[str, int] = {}
    for index, item in section_items(raw, "adapters"):
        at: JsonPath = ("adapters", index)
        ident = item.get("id")
        if isinstance(ident, str):
            if ident in adapters:
                issues.append(
                    Issue(
                        path=(*at, "id"),
                        reason=f"duplicate adapter id {ident!r}"
                        f" (first defined at $.adapters[{adapters[ident]}])",
                    )
                )
            else:
                adapters[ident] = index
        issues.extend(_adapter_issues(at, item))
    operations = adapter_operations(raw)
    for index, item in section_items(raw, "routes"):
        issues.extend(_route_issues(("routes", index), item, operations))
    purposes: dict[str, int] = {}
    for index, item in section_items(raw, "purposes"):
        at = ("purposes", index)
        ident = item.get("id")
        if isinstance(ident, str):
            if ident in purposes:
                issues.append(
                    Issue(
                        path=(*at, "id"),
                        reason=f"duplicate purpose id {ident!r}"
                        f" (first defined at $.purposes[{purposes[ident]}])",
                    )
                )
            else:
                purposes[ident] = index
        issues.extend(_purpose_issues(at, item, operations))
    return issues


def _adapter_issues(at: JsonPath, item: Mapping[str, Any]) -> Iterator[Issue]:
    url = item.get("base_url")
    if isinstance(url, str):
        problem = _url_problem(url)
        if problem:
            yield Issue(
                path=(*at, "base_url"),
                reason=f"{url!r} is not an http(s)://host[:port][/path] URL ({problem})",
            )
    plugin = item.get("plugin")
    if isinstance(plugin, str):
        try:
            load_plugin(plugin)
        except AdapterUnavailable as exc:
            yield Issue(path=(*at, "plugin"), reason=exc.detail)
    timeouts = item.get("timeouts")
    total = 10.0
    if isinstance(timeouts, dict):
        total = _number(timeouts.get("total"), 10.0)
        for name, default in (("connect", 2.0), ("read", 5.0)):
            value = _number(timeouts.get(name), default)
            if value > total:
                yield Issue(
                    path=(*at, "timeouts"),
                    reason=f"{name} ({value:g}s) must not exceed total ({total:g}s)",
                )
    limit = item.get("rate_limit")
    if isinstance(limit, dict):
        wait = _number(limit.get("max_wait"), 0.5)
        if wait >= total:
            yield Issue(
                path=(*at, "rate_limit", "max_wait"),
                reason=f"max_wait ({wait:g}s) must be shorter than timeouts.total ({total:g}s)",
            )
    retries = item.get("retries")
    if isinstance(retries, dict):
        first = _number(retries.get("backoff_initial"), 0.05)
        most = _number(retries.get("backoff_max"), 1.0)
        if first > most:
            yield Issue(
                path=(*at, "retries"),
                reason=f"backoff_initial ({first:g}s) must not exceed backoff_max ({most:g}s)",
            )
    credentials = item.get("credentials")
    if isinstance(credentials, dict):
        scheme = credentials.get("scheme")
        if scheme == "basic" and not credentials.get("username"):
            yield Issue(path=(*at, "credentials"), reason="a basic scheme needs a username")
        if scheme != "api_key" and "header" in credentials:
            yield Issue(
                path=(*at, "credentials", "header"),
                reason="only an api_key scheme takes a header (bearer and basic use Authorization)",
            )


def _route_issues(
    at: JsonPath,
    item: Mapping[str, Any],
    operations: Mapping[str, Mapping[str, Operation[Any, Any]] | None],
) -> Iterator[Issue]:
    targets = [name for name in ("upstream", "adapter", "payments") if name in item]
    if len(targets) != 1:
        state = " and ".join(targets) + " are set" if targets else "none is set"
        yield Issue(
            path=at, reason=f"set exactly one of 'upstream', 'adapter' and 'payments' ({state})"
        )
    payments = item.get("payments")
    if isinstance(payments, dict) and isinstance(payments.get("adapter"), str):
        yield from _payments_route_issues(at, payments["adapter"], operations)
    target = item.get("adapter")
    if not isinstance(target, dict):
        return
    name, operation = target.get("name"), target.get("operation")
    if not isinstance(name, str):
        return
    if name not in operations:
        yield Issue(path=(*at, "adapter", "name"), reason=f"{name!r} is not a defined adapter")
        return
    known = operations[name]
    if known is not None and isinstance(operation, str) and operation not in known:
        yield Issue(
            path=(*at, "adapter", "operation"),
            reason=f"{operation!r} is not an operation of adapter {name!r}"
            f" (it has: {', '.join(sorted(known))})",
        )


#: What an adapter must offer to serve the payments API.
PAYMENT_OPERATIONS = ("create_intent", "get_intent", "capture", "cancel", "refund", "find_refund")


def _payments_route_issues(
    at: JsonPath, name: str, operations: Mapping[str, Mapping[str, Operation[Any, Any]] | None]
) -> Iterator[Issue]:
    if name not in operations:
        yield Issue(path=(*at, "payments", "adapter"), reason=f"{name!r} is not a defined adapter")
        return
    known = operations[name]
    missing = [op for op in PAYMENT_OPERATIONS if known is not None and op not in known]
    if missing:
        yield Issue(
            path=(*at, "payments", "adapter"),
            reason=f"adapter {name!r} is not a payment adapter (it lacks {', '.join(missing)})",
        )


def _purpose_issues(
    at: JsonPath,
    item: Mapping[str, Any],
    operations: Mapping[str, Mapping[str, Operation[Any, Any]] | None],
) -> Iterator[Issue]:
    seen: dict[tuple[str, str], int] = {}
    for index, read in section_items(item, "reads"):
        here: JsonPath = (*at, "reads", index)
        name, operation = read.get("adapter"), read.get("operation")
        if not isinstance(name, str) or not isinstance(operation, str):
            continue
        if (name, operation) in seen:
            yield Issue(
                path=here,
                reason=f"{name}.{operation} is already listed at reads[{seen[(name, operation)]}]",
            )
        seen.setdefault((name, operation), index)
        if name not in operations:
            yield Issue(path=(*here, "adapter"), reason=f"{name!r} is not a defined adapter")
            continue
        known = operations[name]
        if known is None:
            continue
        spec = known.get(operation)
        if spec is None:
            yield Issue(
                path=(*here, "operation"),
                reason=f"{operation!r} is not an operation of adapter {name!r}"
                f" (it has: {', '.join(sorted(known))})",
            )
            continue
        if spec.record is None:
            yield Issue(
                path=(*here, "operation"),
                reason=f"{name}.{operation} is not a registrar read, so no purpose applies",
            )
        fields = read.get("fields")
        if isinstance(fields, list) and spec.fields:
            for position, field in enumerate(fields):
                if isinstance(field, str) and field.partition(".")[0] not in spec.fields:
                    yield Issue(
                        path=(*here, "fields", position),
                        reason=f"{field!r} is not a field of {name}.{operation}"
                        f" (it returns: {', '.join(spec.fields)})",
                    )


def adapter_contract_issues(
    raw: Mapping[str, Any], contracts_dir: Path, read: ContractReader
) -> list[Issue]:
    """Each adapter's contract folder holds an api.yaml naming every operation of its plugin.

    ``read`` reads and checks one ``api.yaml`` (the loader's product-contract check), returning
    its data and findings.
    """
    issues: list[Issue] = []
    root = contracts_dir.resolve()
    operations = adapter_operations(raw)
    for index, item in section_items(raw, "adapters"):
        folder, ident = item.get("contract"), item.get("id")
        if not isinstance(folder, str) or {".", ".."} & set(folder.split("/")):
            continue
        at: JsonPath = ("adapters", index, "contract")
        shown = f"{root.name}/{folder}"
        if not (root / folder / "api.yaml").is_file():
            issues.append(Issue(path=at, reason=f"'{shown}/api.yaml' does not exist"))
            continue
        contract, findings = read(root / folder, f"{shown}/api.yaml")
        issues.extend(Issue(path=at, reason=finding) for finding in findings)
        known = operations.get(ident) if isinstance(ident, str) else None
        if findings or known is None or not isinstance(contract, dict):
            continue
        listed = {
            op.get("operation_id")
            for op in contract.get("operations") or []
            if isinstance(op, dict)
        }
        missing = sorted(set(known) - listed)
        if missing:
            issues.append(
                Issue(
                    path=at,
                    reason=f"'{shown}/api.yaml' has no operation_id for {', '.join(missing)}",
                )
            )
    return issues


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "invalid port or address"
    if parts.scheme not in {"http", "https"}:
        return "the scheme must be http or https"
    if not parts.hostname:
        return "no host"
    if parts.username is not None or parts.password is not None:
        return "user info is not allowed (name a secret in credentials)"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "a query or fragment is not allowed"
    if port == 0:
        return "invalid port or address"
    return None
