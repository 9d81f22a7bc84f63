"""Restocking numeric core: demand forecasts, stock policies, rules and proposals.

Pure code (numpy and the standard library, pydantic for rule validation): no database, no HTTP, no clock
reads except where a caller passes ``today``. The cloud service feeds it ledger-derived demand and master
data and persists what it returns.
"""
