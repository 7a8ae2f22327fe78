"""Small builders for the permission policy tests: documents, compiled policies, contexts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hub.auth.principal import Kind, Principal
from hub.config.loader import document_from_raw
from hub.config.snapshot import Snapshot, compile_snapshot
from hub.policy.compile import Decision
from hub.policy.context import RequestContext

ROUTES: list[dict[str, Any]] = [
    {
        "id": "records",
        "path": "/api/est/{establishment_id}/records/{id}",
        "upstream": "svc",
        "product": "est",
        "version": 1,
    },
    {"id": "open", "prefix": "/api/open/", "upstream": "svc"},
]


def document(permissions: Sequence[Mapping[str, Any]], routes: Sequence[Any] = ROUTES) -> Any:
    return document_from_raw(
        {
            "upstreams": [{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
            "routes": list(routes),
            "products": [{"id": "est", "version": 1, "title": "Establishments"}],
            "permissions": list(permissions),
        }
    )


def snapshot(permissions: Sequence[Mapping[str, Any]]) -> Snapshot:
    return compile_snapshot(1, document(permissions), {"svc": None})  # type: ignore[dict-item]


def principal(
    kind: Kind = "client",
    *,
    scopes: Sequence[str] = (),
    client_id: str | None = "acme",
    establishment: str | None = None,
    subject: str = "s-1",
    delegation: str | None = None,
    roles: Sequence[str] = (),
    memberships: Sequence[str] = (),
    delegated_scopes: Sequence[str] = (),
) -> Principal:
    return Principal(
        subject=subject,
        kind=kind,
        issuer="http://hub",
        client_id=client_id,
        scopes=frozenset(scopes),
        establishment=establishment,
        delegation=delegation,
        roles=frozenset(roles),
        memberships=frozenset(memberships),
        delegated_scopes=frozenset(delegated_scopes),
        delegations=frozenset({delegation} if delegation else ()),
    )


def decide(
    snap: Snapshot,
    who: Principal,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    client_ip: str = "127.0.0.1",
    now: float | None = None,
) -> Decision | None:
    """The decision as the gateway makes it; ``None`` when no permission covers the route."""
    match = snap.table.match(method, "", path, list(headers))
    assert match is not None, f"no route for {method} {path}"
    policy = snap.policies.get(match.route.id)
    if policy is None:
        return None
    return policy.decide(
        RequestContext(
            principal=who,
            method=method,
            path=path,
            params=match.params,
            query_string=query,
            headers=headers,
            client_ip=client_ip,
            now=now,
            operations=policy.operations,
        )
    )
