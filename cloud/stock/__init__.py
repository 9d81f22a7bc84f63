"""Stock: what is where (the stock read tables, per-zone counts), its history and the stock routes."""
