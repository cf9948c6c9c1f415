"""Footfall's Python client: server-side pageviews and events, and middleware that records a
pageview per HTML response (footfall_client.asgi, .wsgi, .django). Standard library only."""

from footfall_client.aio import AsyncFootfall
from footfall_client.batching import Stats
from footfall_client.client import Footfall
from footfall_client.transport import Backoff, FootfallError

__all__ = ["AsyncFootfall", "Backoff", "Footfall", "FootfallError", "Stats"]
__version__ = "0.1.0"
