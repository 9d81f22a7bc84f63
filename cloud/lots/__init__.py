"""Lots: evidence per lot (history, MKT, shelf life, FEFO), the lot-evidence read model, expiry
alerts, PDF/PNG reports and the lot routes."""
