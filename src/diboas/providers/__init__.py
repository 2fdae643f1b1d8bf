"""Adapters to the outside world behind interfaces, each with a sandbox."""
