"""Typed, immutable view of the ``permissions`` section of a configuration document.

A permission is a named set of rules covering some routes (by route id or product). Built by
:mod:`hub.config.loader` from JSON that already passed the schema and the semantic checks of
:mod:`hub.config._permissions`; compiled into closures by :mod:`hub.policy.compile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ConditionSpec",
    "Effect",
    "MaskSpec",
    "ObligationSpec",
    "PermissionSpec",
    "ResourceSpec",
    "RuleSpec",
    "SubjectSpec",
]

Effect = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionSpec:
    """``attr op value`` or ``attr op ref`` (another attribute), e.g. establishment == path param.

    ``value`` is text or a list of texts (numbers in YAML are compared as their text); ``tz`` is
    the IANA zone of the ``request.time``/``request.weekday`` operators. ``member_of`` and
    ``delegated_by`` take both: ``ref`` names the establishment, ``value`` the roles or scopes.
    """

    attr: str
    op: str
    value: str | tuple[str, ...] | None = None
    ref: str | None = None
    tz: str = "UTC"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectSpec:
    """Who a rule is about; every listed key must match (an empty spec matches anybody).

    ``kinds``, ``clients``, ``subjects`` and ``roles`` match when the principal has any of the
    listed values; ``scopes`` when it holds every listed scope.
    """

    kinds: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceSpec:
    """Which requests of the permission's routes a rule is about (empty: all of them).

    ``operations`` names operations (``operation_id``) of the routes' product contracts.
    """

    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskSpec:
    """Replace all but the last ``keep_last`` characters of a response field with ``*``."""

    field: str
    keep_last: int = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class ObligationSpec:
    """What an allow rule imposes on the JSON response: fields masked, fields dropped."""

    mask: tuple[MaskSpec, ...] = ()
    drop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSpec:
    """One rule of a permission: who, which requests, under which conditions, with what effect."""

    id: str
    effect: Effect
    description: str = ""
    subjects: SubjectSpec = field(default_factory=SubjectSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    conditions: tuple[ConditionSpec, ...] = ()
    obligations: ObligationSpec = field(default_factory=ObligationSpec)


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionSpec:
    """A named permission: the routes it covers (default deny there) and its rules."""

    id: str
    description: str = ""
    routes: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
