"""Alembic environment: always driven by :mod:`cloud.core.migrate`, which passes an open connection.

The caller already holds a transaction (and, on PostgreSQL, the migration advisory lock), so
Alembic runs inside it: the whole upgrade commits or rolls back as one unit.
"""

from __future__ import annotations

from alembic import context

from cloud.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `shelfsense cloud migrate` (cloud.core.migrate), not bare alembic"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
