"""The consumer app (app.diboas.com; ``/app`` in development)."""
