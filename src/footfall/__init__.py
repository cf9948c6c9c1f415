"""Footfall: self-hosted, privacy-first web analytics with first-class server-side tracking."""

__version__ = "0.1.0"
