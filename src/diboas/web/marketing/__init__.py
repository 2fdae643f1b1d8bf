"""The marketing site (diboas.com; ``/`` in development)."""
