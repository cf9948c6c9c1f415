"""Reference data of our own for enrichment, kept apart from the code that uses it."""
