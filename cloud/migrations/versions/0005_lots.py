"""lots evidence (shelf-life models, lot reports)

Revision ID: 0005
Revises: 0004

A reserved slot: the feature that owns it fills in upgrade()/downgrade() with its tables, defined
in its own tables module on the shared metadata (see cloud/core/db.py, bottom).
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
