"""The HTTP API: one FastAPI application behind every app of the platform."""
