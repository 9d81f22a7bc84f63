"""lots evidence (shelf-life models, lot reports)

Revision ID: 0005
Revises: 0004

The per-product shelf-life model used by cloud.services.lots: ``shelf_life_model`` (arrhenius or
q10), its activation energy or Q10, and the reference temperature at which ``shelf_life_days``
holds. All nullable: a product without them gets the defaults (Arrhenius, 83.144 kJ/mol).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("shelf_life_model", sa.String(length=16)),
    ("activation_energy_kj", sa.Float()),
    ("q10", sa.Float()),
    ("reference_temp_c", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        for name, type_ in _COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
