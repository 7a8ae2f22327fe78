"""Conditions of a rule: ``{attr, op, value | ref}`` compiled once into a closure.

Attributes (what ``attr`` and ``ref`` may name), by type:

- text: ``principal.subject``, ``principal.kind``, ``principal.issuer``,
  ``principal.client_id``, ``principal.acr``, ``principal.establishment`` (the establishment a
  client acts for), ``principal.delegation`` (the delegation it acts under), ``request.method``,
  ``request.path``, ``request.operation`` (the contract operation, see
  :mod:`hub.policy.operations`), ``path.<param>`` (a path parameter of the route's template),
  ``query.<name>`` (its first value), ``header.<name>``;
- set: ``principal.scopes``, ``principal.roles`` (staff roles: ``platform_admin``,
  ``agency_officer``);
- memberships: ``principal.memberships`` (establishment → role: owner, hr_officer, employee);
- delegations: ``principal.delegated_scopes`` (establishment → the scopes it delegated);
- ip: ``request.client_ip`` (the client address, after trusted proxies);
- time: ``request.time`` (time of day in the condition's ``tz``, default UTC);
- weekday: ``request.weekday`` (``mon`` … ``sun`` in ``tz``).

Operators per type:

- text: ``eq``, ``ne`` (value or ref), ``in``, ``not_in`` (a list), ``prefix``, ``exists``;
- set: ``contains``, ``not_contains`` (value or a text ref), ``exists`` (not empty);
- ip: ``cidr``, ``not_cidr`` (a list of networks), ``eq``, ``ne``, ``in``, ``not_in``, ``exists``;
- time: ``before`` and ``after`` (``"HH:MM"``, half-open), ``between`` (``["HH:MM", "HH:MM"]``,
  from inclusive to exclusive, wrapping past midnight when from > to);
- weekday: ``eq``, ``ne``, ``in``, ``not_in``;
- memberships: ``member_of`` with ``ref`` naming the establishment (a text attribute, e.g.
  ``path.establishment_id``) and, optionally, ``value`` the roles (any of them; all roles when
  left out); ``not_member_of``; ``exists`` (a member anywhere);
- delegations: ``delegated_by`` with ``ref`` naming the establishment and ``value`` the scopes
  (every one of them); ``not_delegated_by``; ``exists`` (any delegation).

A missing attribute (no establishment, no such query parameter) makes every operator false except
the negations ``ne``, ``not_in``, ``not_contains`` and ``not_cidr``, which are exactly ``not``
of their positive forms; so a deny rule written with a negation also catches the missing case.
``eq`` with a ref is false when either side is missing: two absent values are never "equal".
No expression language and no ``eval``: only this table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address, ip_network
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.policy.context import RequestContext
from hub.policy.model import ConditionSpec

__all__ = [
    "ATTRIBUTE_TYPES",
    "OPERATORS",
    "Check",
    "ConditionError",
    "Getter",
    "Predicate",
    "attribute_type",
    "compile_condition",
]

Getter = Callable[[RequestContext], object]
Predicate = Callable[[RequestContext], bool]

TEXT, SET, IP, TIME, WEEKDAY = "text", "set", "ip", "time", "weekday"
MEMBERSHIPS, DELEGATIONS = "memberships", "delegations"
#: The roles a membership can have (hub.db.establishment_store.MembershipRole).
MEMBERSHIP_ROLES = ("owner", "hr_officer", "employee")

_EMPTY: frozenset[str] = frozenset()

_FIXED: dict[str, tuple[str, Getter]] = {
    "principal.subject": (TEXT, lambda c: c.principal.subject),
    "principal.kind": (TEXT, lambda c: c.principal.kind),
    "principal.issuer": (TEXT, lambda c: c.principal.issuer or None),
    "principal.client_id": (TEXT, lambda c: c.principal.client_id),
    "principal.acr": (TEXT, lambda c: c.principal.acr),
    "principal.establishment": (TEXT, lambda c: c.principal.establishment),
    "principal.delegation": (TEXT, lambda c: c.principal.delegation),
    "principal.scopes": (SET, lambda c: c.principal.scopes),
    "principal.roles": (SET, lambda c: c.roles),
    "principal.memberships": (MEMBERSHIPS, lambda c: c.principal.memberships),
    "principal.delegated_scopes": (DELEGATIONS, lambda c: c.principal.delegated_scopes),
    "request.method": (TEXT, lambda c: c.method),
    "request.path": (TEXT, lambda c: c.path),
    "request.operation": (TEXT, lambda c: c.operation),
    "request.client_ip": (IP, lambda c: c.client_ip or None),
    "request.time": (TIME, lambda c: c.now),
    "request.weekday": (WEEKDAY, lambda c: c.now),
}
# Dynamic families: the part after the dot is a name chosen by the document.
_FAMILIES = ("path.", "query.", "header.")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")

ATTRIBUTE_TYPES: dict[str, str] = {
    **{name: kind for name, (kind, _) in _FIXED.items()},
    **{family + "<name>": TEXT for family in _FAMILIES},
}

OPERATORS: dict[str, frozenset[str]] = {
    TEXT: frozenset({"eq", "ne", "in", "not_in", "prefix", "exists"}),
    SET: frozenset({"contains", "not_contains", "exists"}),
    IP: frozenset({"cidr", "not_cidr", "eq", "ne", "in", "not_in", "exists"}),
    TIME: frozenset({"before", "after", "between"}),
    WEEKDAY: frozenset({"eq", "ne", "in", "not_in"}),
    MEMBERSHIPS: frozenset({"member_of", "not_member_of", "exists"}),
    DELEGATIONS: frozenset({"delegated_by", "not_delegated_by", "exists"}),
}
_REF_OPS = frozenset({"eq", "ne", "contains", "not_contains"})
_LIST_OPS = frozenset({"in", "not_in", "cidr", "not_cidr", "between"})
_NEGATIONS = {
    "ne": "eq",
    "not_in": "in",
    "not_contains": "contains",
    "not_cidr": "cidr",
    "not_member_of": "member_of",
    "not_delegated_by": "delegated_by",
}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class ConditionError(ValueError):
    """A condition that cannot be compiled; the message says why, for the validator."""


@dataclass(frozen=True, slots=True)
class Check:
    """One compiled test of a rule, and how to say it in an explanation."""

    text: str
    test: Predicate


def attribute_type(name: str) -> str | None:
    """The type of attribute ``name``, ``None`` when there is no such attribute."""
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed[0]
    for family in _FAMILIES:
        if name.startswith(family) and _NAME.fullmatch(name[len(family) :]):
            return TEXT
    return None


def _getter(name: str) -> Getter:
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed[1]
    family, _, key = name.partition(".")
    if family == "path":
        return lambda c: c.params.get(key)
    if family == "query":
        return lambda c: c.query(key)
    header = key.lower().encode("latin-1")
    return lambda c: c.header(header)


def compile_condition(spec: ConditionSpec) -> Check:
    """The condition as a predicate over a :class:`RequestContext`; ConditionError if invalid."""
    kind = attribute_type(spec.attr)
    if kind is None:
        raise ConditionError(f"unknown attribute {spec.attr!r}")
    op = spec.op
    if op not in OPERATORS[kind]:
        allowed = ", ".join(sorted(OPERATORS[kind]))
        raise ConditionError(f"operator {op!r} does not apply to {spec.attr} (use {allowed})")
    positive = _NEGATIONS.get(op, op)
    if positive in ("member_of", "delegated_by"):
        test = _affiliation(positive, spec)
    elif spec.ref is not None and spec.value is not None:
        raise ConditionError("give either 'value' or 'ref', not both")
    else:
        test = _compile(kind, positive, spec)
    if positive != op:
        inner = test

        def test(c: RequestContext) -> bool:
            return not inner(c)

    return Check(text=_describe(spec), test=test)


def _compile(kind: str, op: str, spec: ConditionSpec) -> Predicate:
    get = _getter(spec.attr)
    if op == "exists":
        if spec.value is not None or spec.ref is not None:
            raise ConditionError("'exists' takes neither 'value' nor 'ref'")
        return lambda c: bool(get(c))
    if spec.ref is not None:
        if op not in _REF_OPS:
            raise ConditionError(f"operator {spec.op!r} takes a 'value', not a 'ref'")
        ref_kind = attribute_type(spec.ref)
        if ref_kind is None:
            raise ConditionError(f"unknown attribute {spec.ref!r} in 'ref'")
        wanted = TEXT if kind == SET else kind
        if ref_kind != wanted and not {ref_kind, wanted} <= {TEXT, IP}:
            raise ConditionError(f"{spec.attr} cannot be compared with {spec.ref} ({ref_kind})")
        other = _getter(spec.ref)
        if op == "eq":

            def same(c: RequestContext) -> bool:
                left = get(c)
                return left is not None and left == other(c)

            return same

        def holds(c: RequestContext) -> bool:
            item = other(c)
            return item is not None and item in get(c)  # type: ignore[operator]

        return holds

    value = spec.value
    if value is None:
        raise ConditionError(f"operator {spec.op!r} needs a 'value' (or a 'ref')")
    if op in _LIST_OPS:
        if isinstance(value, str):
            value = (value,)
    elif not isinstance(value, str):
        raise ConditionError(f"operator {spec.op!r} takes one value, not a list")

    if kind == TIME:
        return _time(op, value, _zone(spec.tz), get)
    if kind == WEEKDAY:
        return _weekday(op, value, _zone(spec.tz), get)
    if op == "cidr":
        try:
            networks = tuple(ip_network(item, strict=False) for item in value)
        except ValueError as exc:
            raise ConditionError(f"not a network: {exc}") from exc

        def inside(c: RequestContext) -> bool:
            address = c.ip()
            return address is not None and any(address in net for net in networks)

        return inside
    if op == "eq":
        if kind == IP:
            value = _address(value)  # type: ignore[arg-type]
        return lambda c: get(c) == value
    if op == "in":
        members = frozenset(_address(v) if kind == IP else v for v in value)
        return lambda c: get(c) in members
    if op == "prefix":
        start = value

        def starts(c: RequestContext) -> bool:
            text = get(c)
            return isinstance(text, str) and text.startswith(start)

        return starts
    # contains
    return lambda c: value in get(c)  # type: ignore[operator]


def _affiliation(op: str, spec: ConditionSpec) -> Predicate:
    """``member_of``, ``delegated_by``: establishment from ``ref``, roles or scopes in ``value``."""
    if spec.ref is None:
        raise ConditionError(f"operator {op!r} needs a 'ref' naming the establishment")
    if attribute_type(spec.ref) != TEXT:
        raise ConditionError(f"'ref' of {op!r} must be a text attribute such as path.<param>")
    establishment = _getter(spec.ref)
    get = _getter(spec.attr)
    names = (spec.value,) if isinstance(spec.value, str) else spec.value or ()
    if op == "member_of":
        unknown = [name for name in names if name not in MEMBERSHIP_ROLES]
        if unknown:
            raise ConditionError(
                f"{unknown[0]!r} is not a membership role (use {', '.join(MEMBERSHIP_ROLES)})"
            )
        if not names:

            def member(c: RequestContext) -> bool:
                held: frozenset[str] = get(c)  # type: ignore[assignment]
                where = establishment(c) if held else None
                if not where:
                    return False
                start = f"{where}:"
                return any(item.startswith(start) for item in held)

            return member
    elif not names:
        raise ConditionError("'delegated_by' needs a 'value': the scopes delegated")
    # member_of: any of the roles; delegated_by: every one of the scopes.
    wanted = tuple(dict.fromkeys(names))
    needs_all = op == "delegated_by"

    def holds(c: RequestContext) -> bool:
        held: frozenset[str] = get(c)  # type: ignore[assignment]
        where = establishment(c) if held else None  # nothing held: nothing to concatenate
        if not where:
            return False
        for name in wanted:
            if (f"{where}:{name}" in held) is not needs_all:
                return not needs_all
        return needs_all

    return holds


def _address(text: str) -> str:
    try:
        return str(ip_address(text))
    except ValueError as exc:
        raise ConditionError(f"{text!r} is not an IP address") from exc


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConditionError(f"unknown time zone {name!r}") from exc


def _minutes(text: str) -> int:
    found = _CLOCK.fullmatch(text)
    if found is None:
        raise ConditionError(f"{text!r} is not a time of day (HH:MM, 00:00 to 23:59)")
    return int(found.group(1)) * 60 + int(found.group(2))


def _time(op: str, value: str | tuple[str, ...], zone: ZoneInfo, get: Getter) -> Predicate:
    def minute_of(c: RequestContext) -> int:
        moment = datetime.fromtimestamp(get(c), zone)  # type: ignore[arg-type]
        return moment.hour * 60 + moment.minute

    if op == "between":
        if len(value) != 2:
            raise ConditionError("'between' takes two times: [from, to]")
        start, end = _minutes(value[0]), _minutes(value[1])
        if start == end:
            raise ConditionError("'between' needs two different times")
        if start < end:
            return lambda c: start <= minute_of(c) < end
        return lambda c: not end <= minute_of(c) < start  # wraps past midnight
    bound = _minutes(value)  # type: ignore[arg-type]
    if op == "before":
        return lambda c: minute_of(c) < bound
    return lambda c: minute_of(c) >= bound


def _weekday(op: str, value: str | tuple[str, ...], zone: ZoneInfo, get: Getter) -> Predicate:
    names = (value,) if isinstance(value, str) else value
    unknown = [name for name in names if name not in _WEEKDAYS]
    if unknown:
        raise ConditionError(f"{unknown[0]!r} is not a weekday (use {', '.join(_WEEKDAYS)})")
    days = frozenset(_WEEKDAYS.index(name) for name in names)
    return lambda c: datetime.fromtimestamp(get(c), zone).weekday() in days  # type: ignore[arg-type]


def _describe(spec: ConditionSpec) -> str:
    if spec.op in ("member_of", "not_member_of", "delegated_by", "not_delegated_by"):
        names = (spec.value,) if isinstance(spec.value, str) else spec.value or ()
        what = " as " if spec.op.endswith("member_of") else " with "
        return f"{spec.attr} {spec.op} {spec.ref}" + (
            what + "[" + ", ".join(names) + "]" if names else ""
        )
    if spec.ref is not None:
        return f"{spec.attr} {spec.op} {spec.ref}"
    if spec.value is None:
        return f"{spec.attr} {spec.op}"
    shown = spec.value if isinstance(spec.value, str) else "[" + ", ".join(spec.value) + "]"
    zone = f" ({spec.tz})" if spec.tz != "UTC" and spec.attr.startswith("request.") else ""
    return f"{spec.attr} {spec.op} {shown}{zone}"
