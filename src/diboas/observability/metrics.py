"""Prometheus metrics of the platform (one registry, the default one)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUEST_DURATION = Histogram(
    "diboas_http_request_duration_seconds",
    "HTTP request duration by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0),
)
LEDGER_ENTRIES = Counter(
    "diboas_ledger_entries_total", "Ledger entries committed, by kind.", ["kind"]
)
LEDGER_REFUSALS = Counter(
    "diboas_ledger_refusals_total", "Ledger writes refused, by reason.", ["reason"]
)
DB_TRANSACTION_RETRIES = Counter(
    "diboas_db_transaction_retries_total",
    "Transactions run again after a deadlock or serialization failure.",
)
IDEMPOTENCY_OUTCOMES = Counter(
    "diboas_idempotency_outcomes_total",
    "Idempotent requests by outcome (claimed, replayed, in_flight, mismatch).",
    ["outcome"],
)
RATE_LIMITED = Counter(
    "diboas_rate_limited_total", "Requests refused by a rate limit, by bucket.", ["bucket"]
)
FEE_QUOTES = Counter("diboas_fee_quotes_total", "Fee quotes issued, by operation.", ["operation"])
TRANSACTIONS = Counter(
    "diboas_transactions_total",
    "Money movements entering each status, by type, status and domain.",
    ["type", "status", "domain"],
)
FEE_REVENUE = Counter(
    "diboas_fee_revenue_total",
    "Fee revenue posted to the platform's fee accounts, by operation and currency.",
    ["operation", "currency"],
)
JOBS = Gauge("diboas_jobs", "Jobs in the queue by job name and status.", ["entrypoint", "status"])
