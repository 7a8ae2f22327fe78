"""``POST /api/signatures/v1/sign``: the hub signs a document hash for a domain service.

Internal: only an OAuth client of this hub holding the ``signatures.sign`` scope may call it
(the contracts service's own client). The body names the document (``contract_id``,
``document_hash``: 64 lower-case hex digits of a SHA-256), the internal token the hub minted
for the signer when their request reached the service (``signer_token``), and optionally the
establishment they sign for (``on_behalf_of``). The hub verifies that token itself (its own
key, its own issuer, the calling client's ``owner`` as the audience: a token minted for
another upstream does not pass), so the signer in the answer's JWS is who the hub
authenticated, whatever else the body says. An ``on_behalf_of`` establishment must be one the
signer is affiliated with (owner or member, a delegation of any scope, or the establishment a
client acts for); the service checks the exact scope it requires. Each client may ask for
``SIGNING_LIMIT`` signatures (429 ``rate_limited`` beyond it, :mod:`hub.ratelimit.guard`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from litestar import Request, Response, post

from hub.auth.internal import InternalTokenVerifier
from hub.auth.principal import Principal, invalid_token
from hub.config.model import AuthSpec
from hub.errors import (
    Forbidden,
    InsufficientScope,
    InvalidRequest,
    PayloadTooLarge,
    ServiceUnavailable,
)
from hub.ratelimit.guard import SIGNING_LIMIT, guard
from hub.runtime import Runtime
from hub.signing.jws import Signer, sign_document

__all__ = ["SIGN_PATH", "SIGN_SCOPE", "sign_signature"]

log = structlog.get_logger(__name__)

SIGN_PATH: Final = "/api/signatures/v1/sign"
#: The scope a client needs to have the hub sign for it.
SIGN_SCOPE: Final = "signatures.sign"
_AUTH: Final = AuthSpec(methods=("jwt",))
_MAX_BODY: Final = 16 * 1024
_HASH: Final = re.compile(r"[0-9a-f]{64}")
_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_FIELDS: Final = frozenset({"contract_id", "document_hash", "signer_token", "on_behalf_of"})


def _refuse(errors: list[str]) -> InvalidRequest:
    return InvalidRequest("; ".join(errors), extra={"errors": errors})


def _read(raw: bytes) -> dict[str, Any]:
    if len(raw) > _MAX_BODY:
        raise PayloadTooLarge(f"a signing request is at most {_MAX_BODY} bytes")
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise _refuse(["$: not JSON"]) from None
    if not isinstance(body, dict):
        raise _refuse(["$: the body must be a JSON object"])
    errors = [f"{name}: unknown field" for name in sorted(set(body) - _FIELDS)]
    if not isinstance(body.get("contract_id"), str) or not _ID.fullmatch(body["contract_id"]):
        errors.append("contract_id: required, 1 to 100 letters, digits or _.:-")
    if not isinstance(body.get("document_hash"), str) or not _HASH.fullmatch(body["document_hash"]):
        errors.append("document_hash: required, a SHA-256 in 64 lower-case hex digits")
    if not isinstance(body.get("signer_token"), str) or not body["signer_token"]:
        errors.append("signer_token: required, the signer's internal token")
    behalf = body.get("on_behalf_of")
    if behalf is not None and (not isinstance(behalf, str) or not _ID.fullmatch(behalf)):
        errors.append("on_behalf_of: an establishment id, or null")
    if errors:
        raise _refuse(errors)
    return body


def _affiliated(principal: Principal, establishment: str) -> bool:
    if principal.kind == "client":
        return principal.establishment == establishment
    prefix = f"{establishment}:"
    return any(m.startswith(prefix) for m in principal.memberships) or any(
        s.startswith(prefix) for s in principal.delegated_scopes
    )


async def _caller(runtime: Runtime, request: Request[Any, Any, Any]) -> tuple[Principal, str]:
    """The calling service's client and the audience its internal tokens are minted for."""
    principal = await runtime.authenticate(_AUTH, list(request.scope["headers"]))
    if principal.issuer != runtime.settings.issuer or principal.kind != "client":
        raise Forbidden("only a service's own client of this hub may have documents signed")
    if SIGN_SCOPE not in principal.scopes:
        raise InsufficientScope(f"signing needs the {SIGN_SCOPE} scope")
    if runtime.identity is None or principal.client_id is None:
        raise ServiceUnavailable("the hub's identity stores are not started")
    client = await runtime.identity.clients.get(principal.client_id)
    if client is None or client.disabled_at is not None:
        raise invalid_token("the client is unknown or disabled")
    return principal, client.owner


@post(SIGN_PATH, status_code=200, tags=["signatures"])
async def sign_signature(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Sign ``{contract_id, document_hash, signer, signed_at}`` with the hub's key."""
    runtime: Runtime = request.app.state.runtime
    caller, audience = await _caller(runtime, request)
    await guard(runtime.limiter, "signatures", caller.client_id or "", SIGNING_LIMIT)
    body = _read(await request.body())
    keyring = runtime.keyring
    if keyring is None:
        raise ServiceUnavailable("the hub's keys are not loaded")
    verifier = InternalTokenVerifier(
        keyring.public_key, issuer=runtime.settings.issuer, audience=audience, cache_size=0
    )
    signer_principal = verifier.verify(body["signer_token"])
    behalf: str | None = body.get("on_behalf_of")
    if behalf is not None and not _affiliated(signer_principal, behalf):
        raise Forbidden(f"the signer is not affiliated with establishment {behalf}")
    signer = Signer.of(signer_principal, behalf)
    signed_at = datetime.now(UTC).replace(microsecond=0)
    kid, key, _alg = keyring.signing_key("signature")
    jws = sign_document(
        kid=kid,
        key=key,
        issuer=runtime.settings.issuer,
        contract_id=body["contract_id"],
        document_hash=body["document_hash"],
        signer=signer,
        signed_at=signed_at,
    )
    log.info(
        "signature.signed",
        client_id=caller.client_id,
        contract_id=body["contract_id"],
        signer_kind=signer.kind,
        signer_id=signer.id,
    )
    return Response(
        {"jws": jws, "kid": kid, "signer": signer.as_dict(), "signed_at": signed_at.isoformat()},
        headers={"Cache-Control": "no-store"},
    )
