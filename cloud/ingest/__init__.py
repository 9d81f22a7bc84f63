"""Edge sync ingest: the batch endpoint, each edge's sequence streams, plausibility of event times,
projection of new events into the read tables, and the edges' own routes."""
