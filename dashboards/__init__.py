"""Grafana provisioning for ShelfSense: datasource and dashboard provider YAML, dashboards JSON.

The files live in ``dashboards/grafana/``; :mod:`dashboards.provision` exports them with concrete
values (``shelfsense dashboards export DIR``) or uploads them (``shelfsense dashboards push``).
"""
