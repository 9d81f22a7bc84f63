"""Cold chain: sensor readings against zone and product limits, and the evidence they leave.

Pure computation over readings (no I/O), shared by ingest, reports and the command line: mean kinetic
temperature (:mod:`.mkt`), excursions (:mod:`.excursions`), remaining shelf life (:mod:`.shelflife`),
FEFO (:mod:`.fefo`) and a lot's path through zones (:mod:`.lot_history`). Beside it, the store side:
the evaluation inside ingest and the periodic gap/escalation tick (:mod:`.service`), the runtime that
runs the tick and exports to InfluxDB (:mod:`.runtime`), the sensor tables and routes, and the
cold-chain and lot-evidence tables.
"""
