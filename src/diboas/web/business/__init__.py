"""The business app at ``/business``: organisations, their treasury, members, API keys, IP
allow-list, bulk payouts, exports and audit log, on the business package's own services."""
