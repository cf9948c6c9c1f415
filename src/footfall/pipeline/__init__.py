"""Durability and loading: the spool, sessionization and the writer into the store."""
