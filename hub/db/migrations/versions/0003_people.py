"""People: persons, establishments, memberships, staff roles, vendors, delegations and their audit.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY = "delegation_events is append-only"

# The audit trail of delegations cannot be rewritten: UPDATE, DELETE (and, on PostgreSQL,
# TRUNCATE) of delegation_events fail in the database itself, whoever asks.
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER delegation_events_no_{verb.lower()} BEFORE {verb} ON delegation_events "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    "CREATE FUNCTION delegation_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$",
    "CREATE TRIGGER delegation_events_append_only BEFORE UPDATE OR DELETE ON delegation_events "
    "FOR EACH ROW EXECUTE FUNCTION delegation_events_append_only()",
    "CREATE TRIGGER delegation_events_no_truncate BEFORE TRUNCATE ON delegation_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION delegation_events_append_only()",
]


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _at(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("identifier", sa.String(length=10), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=False),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=True),
        _at("created_at"),
        _at("disabled_at", nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("totp_secret", sa.String(length=200), nullable=True),
        sa.Column("recovery_code_hashes", _json(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        _at("locked_until", nullable=True),
        sa.CheckConstraint("kind IN ('citizen', 'resident')", name=op.f("ck_persons_kind")),
        sa.CheckConstraint(
            "(kind = 'citizen' AND identifier LIKE '1%') "
            "OR (kind = 'resident' AND identifier LIKE '2%')",
            name=op.f("ck_persons_identifier_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
    )
    op.create_index(op.f("ix_persons_identifier"), "persons", ["identifier"], unique=True)

    op.create_table(
        "establishments",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("cr_number", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("size", sa.String(length=16), nullable=False),
        _at("created_at"),
        sa.CheckConstraint(
            "size IN ('micro', 'small', 'medium', 'large')", name=op.f("ck_establishments_size")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_establishments")),
    )
    op.create_index(
        op.f("ix_establishments_cr_number"), "establishments", ["cr_number"], unique=True
    )

    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=20), nullable=False),
        sa.Column("establishment_id", sa.String(length=20), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        _at("since"),
        _at("until", nullable=True),
        sa.CheckConstraint(
            "role IN ('owner', 'hr_officer', 'employee')", name=op.f("ck_memberships_role")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_memberships_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["establishment_id"],
            ["establishments.id"],
            name=op.f("fk_memberships_establishment_id_establishments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_memberships_person_id"), "memberships", ["person_id"])
    op.create_index(op.f("ix_memberships_establishment_id"), "memberships", ["establishment_id"])
    op.create_index(
        "uq_memberships_active",
        "memberships",
        ["person_id", "establishment_id", "role"],
        unique=True,
        sqlite_where=sa.text("until IS NULL"),
        postgresql_where=sa.text("until IS NULL"),
    )

    op.create_table(
        "staff_roles",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.String(length=20), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("agency", sa.String(length=32), nullable=True),
        _at("granted_at"),
        _at("revoked_at", nullable=True),
        sa.CheckConstraint(
            "role IN ('agency_officer', 'platform_admin')", name=op.f("ck_staff_roles_role")
        ),
        sa.CheckConstraint(
            "(role = 'agency_officer' AND agency IS NOT NULL) "
            "OR (role = 'platform_admin' AND agency IS NULL)",
            name=op.f("ck_staff_roles_agency"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_staff_roles_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_roles")),
    )
    op.create_index(op.f("ix_staff_roles_person_id"), "staff_roles", ["person_id"])

    op.create_table(
        "vendor_organisations",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=254), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_organisations")),
    )

    op.create_table(
        "delegations",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("establishment_id", sa.String(length=20), nullable=False),
        sa.Column("grantor_id", sa.String(length=20), nullable=False),
        sa.Column("grantee_person_id", sa.String(length=20), nullable=True),
        sa.Column("grantee_client_id", sa.String(length=40), nullable=True),
        sa.Column("scopes", _json(), nullable=False),
        _at("valid_from"),
        _at("valid_until"),
        _at("created_at"),
        _at("revoked_at", nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "(grantee_person_id IS NULL) <> (grantee_client_id IS NULL)",
            name=op.f("ck_delegations_one_grantee"),
        ),
        sa.CheckConstraint("valid_until > valid_from", name=op.f("ck_delegations_window")),
        sa.ForeignKeyConstraint(
            ["establishment_id"],
            ["establishments.id"],
            name=op.f("fk_delegations_establishment_id_establishments"),
        ),
        sa.ForeignKeyConstraint(
            ["grantor_id"], ["persons.id"], name=op.f("fk_delegations_grantor_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["grantee_person_id"],
            ["persons.id"],
            name=op.f("fk_delegations_grantee_person_id_persons"),
        ),
        sa.ForeignKeyConstraint(
            ["grantee_client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_delegations_grantee_client_id_oauth_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
    )
    for column in ("establishment_id", "grantor_id", "grantee_person_id", "grantee_client_id"):
        op.create_index(op.f(f"ix_delegations_{column}"), "delegations", [column])

    op.create_table(
        "delegation_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delegation_id", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        _at("at"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=False),
        sa.CheckConstraint(
            "action IN ('granted', 'revoked')", name=op.f("ck_delegation_events_action")
        ),
        sa.ForeignKeyConstraint(
            ["delegation_id"],
            ["delegations.id"],
            name=op.f("fk_delegation_events_delegation_id_delegations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegation_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_delegation_events_delegation_id"), "delegation_events", ["delegation_id"]
    )
    triggers = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER delegation_events_no_truncate ON delegation_events")
        op.execute("DROP TRIGGER delegation_events_append_only ON delegation_events")
        op.execute("DROP FUNCTION delegation_events_append_only()")
    else:
        op.execute("DROP TRIGGER delegation_events_no_delete")
        op.execute("DROP TRIGGER delegation_events_no_update")
    op.drop_index(op.f("ix_delegation_events_delegation_id"), table_name="delegation_events")
    op.drop_table("delegation_events")
    for column in ("grantee_client_id", "grantee_person_id", "grantor_id", "establishment_id"):
        op.drop_index(op.f(f"ix_delegations_{column}"), table_name="delegations")
    op.drop_table("delegations")
    op.drop_table("vendor_organisations")
    op.drop_index(op.f("ix_staff_roles_person_id"), table_name="staff_roles")
    op.drop_table("staff_roles")
    op.drop_index("uq_memberships_active", table_name="memberships")
    op.drop_index(op.f("ix_memberships_establishment_id"), table_name="memberships")
    op.drop_index(op.f("ix_memberships_person_id"), table_name="memberships")
    op.drop_table("memberships")
    op.drop_index(op.f("ix_establishments_cr_number"), table_name="establishments")
    op.drop_table("establishments")
    op.drop_index(op.f("ix_persons_identifier"), table_name="persons")
    op.drop_table("persons")
