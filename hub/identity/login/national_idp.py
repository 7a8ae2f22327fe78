"""The hub as a relying party of the national identity provider (OpenID Connect, code + PKCE).

authlib's httpx client builds the authorization URL (PKCE S256, state, nonce) and redeems the
code with ``client_secret_basic``; the ID token is checked here with PyJWT against the IdP's
JWKS: RS256 only, ``iss`` equal to the configured issuer, ``aud`` our client id, ``exp``/``iat``
present, ``nonce`` the one this browser's sign-in was started with. The IdP's metadata and keys
are cached (an unknown ``kid`` refetches the keys once, so a rotation is picked up).

Every failure of the IdP (an error answer, a timeout, a bad token) becomes
:class:`FederationFailed`; no httpx, authlib or jwt exception leaves this module.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Final

import anyio

# authlib.deprecate installs an 'always' filter when first imported: import it before silencing,
# or its filter would land inside the block below and win over ours.
import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401
import httpx
import jwt

with warnings.catch_warnings():
    # authlib names its httpx integration deprecated in favour of one for a future httpx.
    warnings.simplefilter("ignore")
    from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )

from hub.errors import FederationFailed

__all__ = ["IdpIdentity", "NationalIdpClient"]

_ALGORITHMS: Final = ["RS256"]
_METADATA_SECONDS: Final = 3600.0
_LEEWAY_SECONDS: Final = 30
_MAX_DOCUMENT_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class IdpIdentity:
    """Who the IdP says signed in."""

    subject: str
    national_id: str
    claims: dict[str, Any]


class NationalIdpClient:
    """One upstream OpenID provider, one client registration at it."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Any = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._timeout = timeout
        self._transport = transport
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._lock = anyio.Lock()

    def _oauth(self) -> Any:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            redirect_uri=self.redirect_uri,
            scope="openid",
            code_challenge_method="S256",
            timeout=self._timeout,
            follow_redirects=False,
            transport=self._transport,
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, transport=self._transport
            ) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                if len(response.content) > _MAX_DOCUMENT_BYTES:
                    raise FederationFailed(f"{url} answered with an oversized document")
                document = response.json()
        except httpx.HTTPError as exc:
            raise FederationFailed(f"the identity provider did not answer: {exc!s}") from exc
        except ValueError as exc:
            raise FederationFailed(f"{url} did not answer JSON") from exc
        if not isinstance(document, dict):
            raise FederationFailed(f"{url} did not answer a JSON object")
        return document

    async def metadata(self) -> dict[str, Any]:
        """The provider's OpenID configuration, cached for an hour."""
        async with self._lock:
            fresh = self._clock() - self._metadata_at < _METADATA_SECONDS
            if self._metadata is not None and fresh:
                return self._metadata
            document = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            # OpenID Connect Discovery §4.3: the issuer must be exactly the one configured.
            if document.get("issuer") != self.issuer:
                raise FederationFailed("the identity provider's metadata names another issuer")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(name), str):
                    raise FederationFailed(f"the identity provider's metadata has no {name}")
            self._metadata, self._metadata_at = document, self._clock()
            return document

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser to sign in at the IdP."""
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._oauth() as oauth:
            url, _state = oauth.create_authorization_url(
                endpoint, state=state, code_verifier=code_verifier, nonce=nonce
            )
        return str(url)

    async def redeem(self, *, code: str, code_verifier: str, nonce: str) -> IdpIdentity:
        """Exchange the code for tokens and return the verified ID token's person."""
        endpoint = (await self.metadata())["token_endpoint"]
        try:
            async with self._oauth() as oauth:
                token = await oauth.fetch_token(
                    endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            raise FederationFailed(f"the identity provider refused the code: {exc!s}") from exc
        except httpx.HTTPError as exc:
            raise FederationFailed(f"the identity provider's token endpoint: {exc!s}") from exc
        except ValueError as exc:
            raise FederationFailed("the identity provider's token answer is not JSON") from exc
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(id_token, str):
            raise FederationFailed("the identity provider sent no ID token")
        return await self.verify_id_token(id_token, nonce=nonce)

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        async with self._lock:
            key = self._keys.get(kid or "")
            if key is not None:
                return key
        # Unknown kid: fetch the keys (once per call), the IdP may have rotated.
        uri = (await self.metadata())["jwks_uri"]
        document = await self._get_json(uri)
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if not isinstance(entry, dict) or entry.get("kty") != "RSA":
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[str(entry.get("kid", ""))] = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWTError:
                continue
        async with self._lock:
            self._keys = keys
        found = keys.get(kid or "")
        if found is None and kid is None and len(keys) == 1:
            found = next(iter(keys.values()))
        if found is None:
            raise FederationFailed("the ID token is signed with a key the provider does not list")
        return found

    async def verify_id_token(self, id_token: str, *, nonce: str) -> IdpIdentity:
        """The claims of ``id_token`` once signature, issuer, audience, times and nonce check."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise FederationFailed("the ID token is malformed") from exc
        if header.get("alg") not in _ALGORITHMS:
            raise FederationFailed("the ID token is not signed with RS256")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=_ALGORITHMS,
                audience=self.client_id,
                issuer=self.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise FederationFailed(f"the ID token does not verify: {exc!s}") from exc
        azp = claims.get("azp")
        if azp is not None and azp != self.client_id:
            raise FederationFailed("the ID token was issued to another party")
        if claims.get("nonce") != nonce:
            raise FederationFailed("the ID token's nonce is not this sign-in's")
        national_id = claims.get("national_id")
        if not isinstance(national_id, str) or not national_id:
            raise FederationFailed("the ID token carries no national_id")
        return IdpIdentity(subject=str(claims["sub"]), national_id=national_id, claims=claims)
