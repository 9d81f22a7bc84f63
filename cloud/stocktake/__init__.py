"""Continuous stocktake: the shared periodic job, reconciliation of expected against observed stock,
discrepancies and their routes."""
