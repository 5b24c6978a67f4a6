"""frs: search recorded footage for the people on a watchlist."""

__version__ = "0.1.0"
