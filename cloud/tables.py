"""Every table of the cloud, on the one shared metadata: importing this module imports each
feature's ``tables.py``, so :data:`metadata` is complete (migrations, backups, the schema test).

Each feature owns its tables (``cloud/<feature>/tables.py``); foreign keys between features are
named by table, resolved once all are loaded here.
"""

from __future__ import annotations

from cloud.alerts import tables as alerts_tables
from cloud.coldchain import evidence_tables, sensor_tables
from cloud.coldchain import tables as coldchain_tables
from cloud.core.db import metadata
from cloud.epcis import tables as epcis_tables
from cloud.ingest import tables as ingest_tables
from cloud.masterdata import tables as masterdata_tables
from cloud.replenish import tables as replenish_tables
from cloud.retention import tables as retention_tables
from cloud.stock import tables as stock_tables
from cloud.stocktake import tables as stocktake_tables
from cloud.users import tables as users_tables
from cloud.web import tables as web_tables

FEATURE_TABLES = (
    alerts_tables,
    coldchain_tables,
    epcis_tables,
    evidence_tables,
    ingest_tables,
    masterdata_tables,
    replenish_tables,
    retention_tables,
    sensor_tables,
    stock_tables,
    stocktake_tables,
    users_tables,
    web_tables,
)

__all__ = ["FEATURE_TABLES", "metadata"]
