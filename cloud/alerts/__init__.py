"""Alerts: the cold-chain rules that raise and clear them (:mod:`.rules`), their lifecycle
(acknowledge, resolve), how they are worded for people (:mod:`.messages`) and their HTTP routes."""
