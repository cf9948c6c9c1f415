"""HTTP APIs beyond ingest: authentication, and later stats, sites and goals."""
