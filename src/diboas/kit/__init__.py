"""Small shared pieces: money, errors, time."""
