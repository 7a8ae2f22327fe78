"""The hub as the occupations, certificates and compliance services see it, for in-process tests.

Built on the visa tests' stand-in (tests/visas_support.py: the token endpoint, the JWKS and
internal tokens minted with the hub's own signer); this one answers the registrar routes these
services read, checks the purpose each must state, and can fail them on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.visas_support import ESTABLISHMENTS, FakeHub

__all__ = ["CERTIFICATES", "RegistryHub"]

CERTIFICATES: dict[str, dict[str, Any]] = {
    "QC-2010-000001": {"number": "QC-2010-000001", "holder_national_id": "1000000001",
                       "degree": "bachelor", "field": "business administration",
                       "institution": "King Saud University", "year": 2010, "status": "valid"},
    "QC-2001-000003": {"number": "QC-2001-000003", "holder_national_id": "1000000099",
                       "degree": "master", "field": "law", "institution": "Cairo University",
                       "year": 2001, "status": "revoked"},
}  # fmt: skip
_PURPOSES = {
    "certificates": "qualification-verification",
    "establishments": "compliance-monitoring",
}


@dataclass
class RegistryHub(FakeHub):
    """``fail_registry`` answers 503; ``status_of`` overrides a certificate's status."""

    purposes: dict[str, str] = field(default_factory=lambda: dict(_PURPOSES))
    establishments: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in ESTABLISHMENTS.items()}
    )

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/api/registry/v1/"):
            return super().handle(request)
        self.calls.append((request.method, path))
        if request.headers.get("authorization") != "Bearer svc-token":
            return httpx.Response(401, json={"code": "invalid_token"})
        if self.fail_registry:
            return httpx.Response(503, json={"code": "adapter_unavailable", "detail": "down"})
        kind, _, key = path.removeprefix("/api/registry/v1/").partition("/")
        if request.url.params.get("purpose") != self.purposes.get(kind):
            return httpx.Response(403, json={"code": "purpose_not_allowed"})
        records = CERTIFICATES if kind == "certificates" else self.establishments
        record = records.get(key)
        headers = {"x-hub-audit-entry": str(len(self.calls))}
        if record is None:
            return httpx.Response(404, json={"code": "record_not_found"}, headers=headers)
        return httpx.Response(200, json=record, headers=headers)
