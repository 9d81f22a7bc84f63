"""Restocking: demand forecasts, stock policies, rules, proposals, approvals and export.

The numeric core is pure code (numpy and the standard library, pydantic for rule validation; no
database, no HTTP, no clock reads except where a caller passes ``today``): :mod:`.forecast` and
:mod:`.recursions`, :mod:`.policy`, :mod:`.rules`, :mod:`.proposals`, :mod:`.kpis`, :mod:`.money`. The
service feeds it ledger-derived demand and master data and persists what it returns: :mod:`.demand`,
:mod:`.state`, :mod:`.run`, :mod:`.approvals`, :mod:`.export` and the periodic job in :mod:`.service`;
HTTP in :mod:`.routes` and :mod:`.kpi_routes`.
"""
