"""Signing keys: a third use, ``signature``, for the hub's signatures of documents.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

``signing_keys.use`` may now be ``signature`` (EdDSA): the key :mod:`hub.signing` signs
documents with (employment contracts). The hub creates the first one at its next start, as
it does for every use without a key.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "use IN ('access', 'internal')"
_NEW = "use IN ('access', 'internal', 'signature')"


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_constraint("use", type_="check")
        batch.create_check_constraint("use", _NEW)


def downgrade() -> None:
    op.execute("DELETE FROM signing_keys WHERE use = 'signature'")
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_constraint("use", type_="check")
        batch.create_check_constraint("use", _OLD)
