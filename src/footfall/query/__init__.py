"""The engine-neutral query model: metrics, dimensions, filters and a date range."""
