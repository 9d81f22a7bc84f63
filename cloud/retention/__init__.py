"""Bounded growth of the SQL store: raw sensor readings are kept for a retention period, then rolled
up per sensor, quantity, zone and bucket (min/max/mean/count) and removed.

- :mod:`.tables`: the roll-up table and the retention state (the *horizon*: readings before it
  exist only rolled up);
- :mod:`.rollup`: one bucket per short transaction, the horizon read by ingest and readers;
- :mod:`.partitions`: PostgreSQL's native partitions of ``sensor_readings`` (weekly, device time)
  and ``stock_movements`` (monthly, business time), created ahead and dropped behind the horizon;
- :mod:`.job`: the periodic job, claimed through :mod:`cloud.core.jobs` (one replica runs it).

InfluxDB stays the long-term store of the raw series (docs/influxdb.md).
"""
