"""SSO: public clients and redirect URIs on oauth_clients, refresh tokens, consents.

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-01

SQLite cannot alter a CHECK constraint, so there ``oauth_clients`` is rebuilt. Alembic's batch
mode would drop the table while other tables' rows still point at it, which fails with foreign
keys on (and ``PRAGMA foreign_keys`` cannot be switched off inside the migration's
transaction). Instead the rows are parked in a plain copy, the table is dropped and created
anew, and the rows come back, with foreign key checks deferred to the commit: by then every
reference resolves again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_AUTH_METHODS = "auth_method IN ('client_secret_basic', 'private_key_jwt')"
_NEW_AUTH_METHODS = "auth_method IN ('client_secret_basic', 'private_key_jwt', 'none')"
_CLIENT_TYPES = "client_type IN ('confidential', 'public')"
_PUBLIC_AUTH_NONE = (
    "(client_type = 'public' AND auth_method = 'none') "
    "OR (client_type = 'confidential' AND auth_method <> 'none')"
)
_CLIENT_COLUMNS = [
    "client_id",
    "name",
    "owner",
    "auth_method",
    "secret_hash",
    "jwks",
    "scopes",
    "grant_types",
    "created_at",
    "disabled_at",
]
_SSO_COLUMNS = ["client_type", "redirect_uris", "post_logout_redirect_uris", "first_party"]
_TOKEN_INDEXES = ["family_id", "client_id", "person_id", "sid", "expires_at"]


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _at(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _sso_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "client_type",
            sa.String(length=16),
            server_default=sa.text("'confidential'"),
            nullable=False,
        ),
        sa.Column("redirect_uris", _json(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column(
            "post_logout_redirect_uris", _json(), server_default=sa.text("'[]'"), nullable=False
        ),
        sa.Column("first_party", sa.Boolean(), server_default=sa.false(), nullable=False),
    ]


def _client_table(*, sso: bool) -> None:
    """``oauth_clients`` as 0002 made it, or with this revision's columns and checks."""
    extra: list[Any] = []
    if sso:
        extra = [
            *_sso_columns(),
            sa.CheckConstraint(_CLIENT_TYPES, name=op.f("ck_oauth_clients_client_type")),
            sa.CheckConstraint(_PUBLIC_AUTH_NONE, name=op.f("ck_oauth_clients_public_auth_none")),
        ]
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("auth_method", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("jwks", _json(), nullable=True),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("grant_types", _json(), nullable=False),
        _at("created_at"),
        _at("disabled_at", nullable=True),
        *extra,
        sa.CheckConstraint(
            _NEW_AUTH_METHODS if sso else _OLD_AUTH_METHODS,
            name=op.f("ck_oauth_clients_auth_method"),
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oauth_clients")),
    )


def _rebuild_sqlite_clients(*, sso: bool) -> None:
    """Recreate ``oauth_clients`` on SQLite, keeping its rows and the references to them."""
    columns = ", ".join(_CLIENT_COLUMNS)
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(f"CREATE TABLE _oauth_clients_0004 AS SELECT {columns} FROM oauth_clients")  # noqa: S608
    op.drop_table("oauth_clients")
    _client_table(sso=sso)
    op.execute(
        f"INSERT INTO oauth_clients ({columns}) SELECT {columns} FROM _oauth_clients_0004"  # noqa: S608
    )
    op.execute("DROP TABLE _oauth_clients_0004")


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _rebuild_sqlite_clients(sso=True)
    else:
        for column in _sso_columns():
            op.add_column("oauth_clients", column)
        op.drop_constraint(op.f("ck_oauth_clients_auth_method"), "oauth_clients", type_="check")
        op.create_check_constraint(
            op.f("ck_oauth_clients_auth_method"), "oauth_clients", _NEW_AUTH_METHODS
        )
        op.create_check_constraint(
            op.f("ck_oauth_clients_client_type"), "oauth_clients", _CLIENT_TYPES
        )
        op.create_check_constraint(
            op.f("ck_oauth_clients_public_auth_none"), "oauth_clients", _PUBLIC_AUTH_NONE
        )

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.String(length=20), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("acr", sa.String(length=100), nullable=False),
        sa.Column("amr", _json(), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=True),
        _at("created_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        _at("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_refresh_tokens_client_id_oauth_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_refresh_tokens_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
    )
    for indexed in _TOKEN_INDEXES:
        op.create_index(
            op.f(f"ix_refresh_tokens_{indexed}"), "refresh_tokens", [indexed], unique=False
        )

    op.create_table(
        "consents",
        sa.Column("person_id", sa.String(length=20), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        _at("granted_at"),
        _at("updated_at"),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_consents_client_id_oauth_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_consents_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("person_id", "client_id", name=op.f("pk_consents")),
    )


def downgrade() -> None:
    op.drop_table("consents")
    for indexed in _TOKEN_INDEXES:
        op.drop_index(op.f(f"ix_refresh_tokens_{indexed}"), table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    # Public clients cannot exist in the older schema; they go (with nothing left to use them).
    op.execute("DELETE FROM oauth_clients WHERE auth_method = 'none'")
    if op.get_context().dialect.name == "sqlite":
        _rebuild_sqlite_clients(sso=False)
    else:
        op.drop_constraint(
            op.f("ck_oauth_clients_public_auth_none"), "oauth_clients", type_="check"
        )
        op.drop_constraint(op.f("ck_oauth_clients_client_type"), "oauth_clients", type_="check")
        op.drop_constraint(op.f("ck_oauth_clients_auth_method"), "oauth_clients", type_="check")
        op.create_check_constraint(
            op.f("ck_oauth_clients_auth_method"), "oauth_clients", _OLD_AUTH_METHODS
        )
        for name in reversed(_SSO_COLUMNS):
            op.drop_column("oauth_clients", name)
