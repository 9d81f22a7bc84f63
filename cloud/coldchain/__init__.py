"""Cold-chain evidence: mean kinetic temperature, excursions, remaining shelf life and FEFO.

Everything here is pure computation over readings (no I/O), so the cloud ingest, reports and the
command line share one implementation.
"""
