"""User administration routes (admins of every site)."""
