"""The double-entry ledger: the only writer of money.

Public surface: ``service`` (accounts, entries, transfers, balances), ``holds``,
``idempotency`` and ``verify``. The rules themselves live in PostgreSQL (sql/0001_ledger.sql).
"""
