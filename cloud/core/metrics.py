"""In-process counters rendered in the Prometheus text exposition format.

Kept dependency-free on purpose: a handful of counters does not need a client library. Counters
are per process and reset at restart, as Prometheus counters may.
"""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self.events_ingested: Counter[str] = Counter()  # by event kind
        self.event_duplicates = 0
        self.reading_duplicates = 0  # new events whose reading was already stored (another seq)
        self.batches_accepted = 0
        self.batches_refused: Counter[str] = Counter()  # by reason

    def refused(self, reason: str) -> None:
        self.batches_refused[reason] += 1

    def render(self) -> str:
        lines = [
            "# HELP shelfsense_events_ingested_total Events stored for the first time, by kind.",
            "# TYPE shelfsense_events_ingested_total counter",
        ]
        lines += [
            f'shelfsense_events_ingested_total{{kind="{k}"}} {v}'
            for k, v in sorted(self.events_ingested.items())
        ]
        lines += [
            "# HELP shelfsense_event_duplicates_total Events received again and ignored (replays).",
            "# TYPE shelfsense_event_duplicates_total counter",
            f"shelfsense_event_duplicates_total {self.event_duplicates}",
            "# HELP shelfsense_reading_duplicates_total Readings already stored for their sensor, "
            "quantity and device time (under another sequence number), left out.",
            "# TYPE shelfsense_reading_duplicates_total counter",
            f"shelfsense_reading_duplicates_total {self.reading_duplicates}",
            "# HELP shelfsense_batches_accepted_total Batches stored and acknowledged.",
            "# TYPE shelfsense_batches_accepted_total counter",
            f"shelfsense_batches_accepted_total {self.batches_accepted}",
            "# HELP shelfsense_batches_refused_total Batches refused, by reason.",
            "# TYPE shelfsense_batches_refused_total counter",
        ]
        lines += [
            f'shelfsense_batches_refused_total{{reason="{k}"}} {v}'
            for k, v in sorted(self.batches_refused.items())
        ]
        return "\n".join(lines) + "\n"


__all__ = ["Metrics"]
