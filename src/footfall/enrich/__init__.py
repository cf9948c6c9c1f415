"""Enrichment: pure functions of a `Hit` plus read-only reference data, producing an `Event`."""
