"""Durable jobs (PgQueuer on the application's own PostgreSQL) and, later, sagas."""
