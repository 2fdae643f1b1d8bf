"""The business services: each takes the session and only flushes; the request commits."""
