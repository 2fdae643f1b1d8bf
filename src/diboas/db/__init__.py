"""Database access: engine and sessions, the embedded PostgreSQL, migrations, transactions."""
