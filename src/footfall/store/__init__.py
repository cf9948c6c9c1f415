"""Storage behind one interface. SQL lives only in this package."""
