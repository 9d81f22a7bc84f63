"""What-if: a Monte Carlo digital twin of a site's inventory, to stress-test restocking policies.

scenario (TOML model) -> model (the site as arrays: from a synthetic [site] or the cloud DB, see state)
-> engine (vectorised day-by-day simulation, the cloud's own policy code) -> results (metrics with 95 %
intervals, daily curves) -> chart (PNG), routes (API), cli (``shelfsense whatif``).
"""
