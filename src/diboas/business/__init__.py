"""The business app's backend: organisations, members and roles, API keys, IP allow-lists,
the organisation's treasury, bulk payouts from CSV, CSV exports and the organisation's audit
log, served under ``/api/v1/business``."""
