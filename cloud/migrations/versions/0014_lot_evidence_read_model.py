"""lot evidence read model

Revision ID: 0014
Revises: 0012

Each lot's evidence (MKT, excursion time, shelf life, effective expiry) precomputed with its stock
per location, and the marks of what changed since (tables in cloud/coldchain/evidence_tables.py),
so ``/lots`` and ``/fefo`` read indexed rows instead of replaying every lot's history. Stock
movements get an index by (site, time): which items moved at a site since a late reading, and by
(time, id): the ledger's keyset pages.
Existing lots have no row yet; the catch-up job fills them in.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(length=128)
_EPC = sa.String(length=124)
_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_VOLATILE = sa.text("stable_from IS NOT NULL")


def _has_table(name: str) -> bool:
    """Adopted databases (see cloud.core.migrate) may have the tables from ``create_all`` already."""
    return name in sa.inspect(op.get_bind()).get_table_names()


def upgrade() -> None:
    op.create_index(
        "ix_stock_movements_site_at", "stock_movements", ["site_id", "at"], unique=False, if_not_exists=True
    )
    op.create_index(
        "ix_stock_movements_at", "stock_movements", ["at", "id"], unique=False, if_not_exists=True
    )
    if not _has_table("lot_evidence"):
        op.create_table(
            "lot_evidence",
            sa.Column("sku", _ID, nullable=False),
            sa.Column("lot_code", _ID, nullable=False),
            sa.Column("lot_id", sa.String(length=260), nullable=False),
            sa.Column("printed_expiry", sa.Date(), nullable=True),
            sa.Column("items", sa.Integer(), nullable=False),
            sa.Column("on_hand", sa.Integer(), nullable=False),
            sa.Column("mkt_c", sa.Float(), nullable=True),
            sa.Column("observed_s", sa.Float(), nullable=False),
            sa.Column("above_s", sa.Float(), nullable=False),
            sa.Column("below_s", sa.Float(), nullable=False),
            sa.Column("has_model", sa.Boolean(), nullable=False),
            sa.Column("consumed_days", sa.Float(), nullable=True),
            sa.Column("remaining_days", sa.Float(), nullable=True),
            sa.Column("dynamic_expiry", _TS, nullable=True),
            sa.Column("effective_expiry", _TS, nullable=True),
            sa.Column("fefo_key", _TS, nullable=False),
            sa.Column("expiry_source", sa.String(length=8), nullable=True),
            sa.Column("floating", sa.Boolean(), nullable=False),
            sa.Column("as_of", _TS, nullable=False),
            sa.Column("stable_from", _TS, nullable=True),
            sa.PrimaryKeyConstraint("sku", "lot_code"),
        )
        op.create_index("ix_lot_evidence_fefo", "lot_evidence", ["sku", "fefo_key", "lot_code"])
        op.create_index("ix_lot_evidence_expiry", "lot_evidence", ["fefo_key"])
        op.create_index(
            "ix_lot_evidence_volatile",
            "lot_evidence",
            ["as_of"],
            sqlite_where=_VOLATILE,
            postgresql_where=_VOLATILE,
        )
    if not _has_table("lot_evidence_stock"):
        op.create_table(
            "lot_evidence_stock",
            sa.Column("sku", _ID, nullable=False),
            sa.Column("lot_code", _ID, nullable=False),
            sa.Column("site_id", _ID, nullable=False),
            sa.Column("location", _ID, nullable=False),
            sa.Column("quantity", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("sku", "lot_code", "site_id", "location"),
        )
        op.create_index("ix_lot_evidence_stock_site", "lot_evidence_stock", ["site_id", "sku", "lot_code"])
    if not _has_table("lot_evidence_marks"):
        op.create_table(
            "lot_evidence_marks",
            sa.Column("id", _PK, autoincrement=True, nullable=False),
            sa.Column("sku", _ID, nullable=True),
            sa.Column("lot_code", _ID, nullable=True),
            sa.Column("epc", _EPC, nullable=True),
            sa.Column("site_id", _ID, nullable=True),
            sa.Column("zone", _ID, nullable=True),
            sa.Column("since", _TS, nullable=True),
            sa.Column("until", _TS, nullable=True),
            sa.Column("due_at", _TS, nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_lot_evidence_marks_due", "lot_evidence_marks", ["due_at", "id"])


def downgrade() -> None:
    op.drop_table("lot_evidence_marks")
    op.drop_table("lot_evidence_stock")
    op.drop_table("lot_evidence")
    op.drop_index("ix_stock_movements_site_at", table_name="stock_movements")
    op.drop_index("ix_stock_movements_at", table_name="stock_movements")
