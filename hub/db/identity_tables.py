"""Tables of the identity slice: signing keys, OAuth clients, API keys, jti ledgers and SSO state.

Secrets never reach these tables in the clear: client secrets and API keys are kept as the
SHA-256 hex of the secret. Signing keys are the exception (see :mod:`hub.identity.keys`).
``used_assertions`` and ``revoked_tokens`` only grow until their rows expire, then are pruned.
Refresh tokens are kept the same way (SHA-256 hex as the primary key); ``consents`` records the
scopes a person let a third-party client have.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime

__all__ = [
    "JTI_LENGTH",
    "ApiKeyRow",
    "ConsentRow",
    "OAuthClientRow",
    "RefreshTokenRow",
    "RevokedTokenRow",
    "SigningKeyRow",
    "UsedAssertionRow",
]

# none_as_null: a Python None must be SQL NULL, not the JSON literal null, so IS NULL works.
_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

# Room for any reasonable jti: ours are 32 hex characters, other issuers' are usually UUIDs.
JTI_LENGTH = 255


class SigningKeyRow(Base):
    """One signing key pair; ``activates_at`` may lie in the future (published, not yet signing)."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint("use IN ('access', 'internal', 'signature')", name="use"),
        CheckConstraint("alg IN ('RS256', 'EdDSA')", name="alg"),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    use: Mapped[str] = mapped_column(String(16), index=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(_JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activates_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OAuthClientRow(Base):
    """A registered OAuth client (a vendor application, for now)."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        CheckConstraint(
            "auth_method IN ('client_secret_basic', 'private_key_jwt', 'none')", name="auth_method"
        ),
        CheckConstraint("client_type IN ('confidential', 'public')", name="client_type"),
        # A public client (a browser or mobile app) holds no secret, and only it may hold none.
        CheckConstraint(
            "(client_type = 'public' AND auth_method = 'none') "
            "OR (client_type = 'confidential' AND auth_method <> 'none')",
            name="public_auth_none",
        ),
    )

    client_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    auth_method: Mapped[str] = mapped_column(String(40))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    scopes: Mapped[list[str]] = mapped_column(_JSON)
    grant_types: Mapped[list[str]] = mapped_column(_JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client_type: Mapped[str] = mapped_column(String(16), server_default=text("'confidential'"))
    redirect_uris: Mapped[list[str]] = mapped_column(_JSON, server_default=text("'[]'"))
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(_JSON, server_default=text("'[]'"))
    first_party: Mapped[bool] = mapped_column(Boolean(), server_default=false())


class ApiKeyRow(Base):
    """An API key, found by its public ``prefix`` and checked against the hash of the whole key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(10), unique=True, index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(ForeignKey("oauth_clients.client_id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(_JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UsedAssertionRow(Base):
    """A client assertion already accepted; its ``jti`` may not be used again by that client."""

    __tablename__ = "used_assertions"

    # Keyed per client: jti values are unique per issuer (RFC 7523), and one client must not be
    # able to burn another client's jti values in advance.
    client_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    jti: Mapped[str] = mapped_column(String(JTI_LENGTH), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class RevokedTokenRow(Base):
    """A token revoked before its expiry; the row is useless (and pruned) once it has expired."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(JTI_LENGTH), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RefreshTokenRow(Base):
    """A refresh token, by the SHA-256 hex of its value; rotation spends it (``used_at``).

    Every token descends from one authorization (its ``family_id``); presenting a spent token
    again revokes the whole family. ``sid`` is the login session it was issued in, so ending
    that session can revoke it.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    scopes: Mapped[list[str]] = mapped_column(_JSON)
    acr: Mapped[str] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(_JSON)
    auth_time: Mapped[int] = mapped_column(Integer())
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsentRow(Base):
    """The scopes a person granted a third-party client (first-party clients ask no consent)."""

    __tablename__ = "consents"

    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id"), primary_key=True)
    scopes: Mapped[list[str]] = mapped_column(_JSON)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
