"""Legal purposes of registrar reads: who may read for which purpose, and which fields.

Every registrar read names a purpose code (``?purpose=visa-eligibility``). The configuration's
``purposes`` say, per purpose, which adapter operations it covers and the only fields each may
return (data minimisation: the answer is cut to them), and which principals may use it (any
entry matching: kinds/clients/subjects/roles any of, scopes all of). The checks run before the
external system is called, so a refused read reads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.auth.principal import Principal
from hub.config.model import PurposeSpec
from hub.errors import PurposeNotAllowed, PurposeRequired, UnknownPurpose
from hub.policy.model import SubjectSpec

__all__ = ["Grant", "Purposes", "project"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """One purpose applied to one adapter operation: the fields it may return."""

    purpose: PurposeSpec
    fields: tuple[str, ...]


def _matches(subject: SubjectSpec, principal: Principal, roles: frozenset[str]) -> bool:
    if subject.kinds and principal.kind not in subject.kinds:
        return False
    if subject.clients and principal.client_id not in subject.clients:
        return False
    if subject.subjects and principal.subject not in subject.subjects:
        return False
    if subject.scopes and not set(subject.scopes) <= principal.scopes:
        return False
    return not (subject.roles and roles.isdisjoint(subject.roles))


class Purposes:
    """The purposes of one configuration version, compiled for lookups."""

    def __init__(self, specs: Sequence[PurposeSpec]) -> None:
        self._by_id = {spec.id: spec for spec in specs}
        self._grants: dict[tuple[str, str, str], Grant] = {
            (spec.id, read.adapter, read.operation): Grant(purpose=spec, fields=read.fields)
            for spec in specs
            for read in spec.reads
        }

    def get(self, code: str) -> PurposeSpec | None:
        return self._by_id.get(code)

    def grant(self, code: str | None, adapter: str, operation: str) -> Grant:
        """The grant for reading ``adapter.operation`` for ``code``; 400/403 problems otherwise."""
        if not code:
            raise PurposeRequired(
                "state the legal purpose of this read: ?purpose=<code>",
                extra={"purposes": self.codes_for(adapter, operation)},
            )
        if code not in self._by_id:
            raise UnknownPurpose(
                f"{code[:64]!r} is not a known purpose",
                extra={"purposes": self.codes_for(adapter, operation)},
            )
        grant = self._grants.get((code, adapter, operation))
        if grant is None:
            raise PurposeNotAllowed(
                f"the purpose {code!r} does not cover this read",
                extra={"purpose": code},
            )
        return grant

    def codes_for(self, adapter: str, operation: str) -> list[str]:
        """The purposes that cover ``adapter.operation``, for a refusal to list."""
        return sorted(code for code, a, o in self._grants if (a, o) == (adapter, operation))

    @staticmethod
    def needs_roles(purpose: PurposeSpec) -> bool:
        return any(subject.roles for subject in purpose.principals)

    @staticmethod
    def check_principal(
        purpose: PurposeSpec, principal: Principal, roles: frozenset[str] = frozenset()
    ) -> None:
        """403 ``purpose_not_allowed`` unless one of the purpose's principals matches."""
        if not any(_matches(subject, principal, roles) for subject in purpose.principals):
            raise PurposeNotAllowed(
                f"this caller may not read for the purpose {purpose.id!r}",
                extra={"purpose": purpose.id},
            )


def project(record: Mapping[str, Any], fields: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``record`` cut to ``fields`` (``a`` or ``a.b``), and the fields it actually returned."""
    out: dict[str, Any] = {}
    returned: list[str] = []
    for name in fields:
        top, _, child = name.partition(".")
        if top not in record:
            continue
        if not child:
            out[top] = record[top]
            returned.append(name)
            continue
        parent = record[top]
        if isinstance(parent, Mapping) and child in parent:
            existing = out.get(top)
            # A whole parent already taken stays whole; otherwise collect the children asked.
            if isinstance(existing, dict) and top not in returned:
                existing[child] = parent[child]
            elif top not in out:
                out[top] = {child: parent[child]}
            returned.append(name)
    return out, sorted(returned)
