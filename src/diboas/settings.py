"""Every setting of the platform, read from the environment with the ``DIBOAS_`` prefix."""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development defaults: good enough on a laptop, refused in production (see below).
DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105
DEFAULT_ENCRYPTION_KEY = "dev-insecure-encryption-key-change-me"

Environment = Literal["development", "test", "production"]


class InsecureSettingsError(ValueError):
    """Raised when a production profile still carries a development secret."""


class Settings(BaseSettings):
    """The platform's configuration. Defaults are the production values for every limit."""

    model_config = SettingsConfigDict(env_prefix="DIBOAS_", extra="ignore")

    env: Environment = "development"
    log_level: str = "INFO"

    # --- processes -------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path(".data")
    # HTTP server processes for `diboas serve`/`run` (each with its own job worker).
    web_concurrency: int = Field(default=1, ge=1, le=32)

    # --- storage ---------------------------------------------------------------------
    # Empty means: start the embedded PostgreSQL under data_dir/postgres.
    database_url: str = ""
    redis_url: str | None = None
    # Enough for one connection per concurrent request at the load the service is sized for
    # (overflow connections are closed on return, so a pool sized too small churns them).
    db_pool_size: int = Field(default=40, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=100)
    # A transaction that meets a deadlock or a serialization failure is run again this often.
    db_max_retries: int = Field(default=8, ge=0)

    # --- secrets ---------------------------------------------------------------------
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    # Earlier secret keys (JSON list), still accepted while a rotation is under way: what was
    # signed under them (web sessions, form tokens, access tokens) keeps working; everything new
    # is signed under secret_key. Drop one once what it signed has expired (sessions: 30 days).
    secret_key_previous: list[SecretStr] = Field(default_factory=list)
    encryption_key: SecretStr = SecretStr(DEFAULT_ENCRYPTION_KEY)
    # Data at rest is sealed under encryption_key as this version. A rotation adds a version:
    # the new secret becomes encryption_key under a higher version, the old one moves to
    # encryption_keys_previous (JSON, {"1": "old secret"}) so what it sealed still opens until
    # `diboas keys reseal` has moved every row and `diboas keys status` shows none left on it.
    encryption_key_version: int = Field(default=1, ge=1, le=32767)  # stored as smallint
    encryption_keys_previous: dict[int, SecretStr] = Field(default_factory=dict)

    # --- identity --------------------------------------------------------------------
    # JWT signing keys by key id, as JSON ({"kid": "secret", ...}); empty: one key derived
    # from secret_key. New tokens are signed with jwt_current_kid; every listed key verifies,
    # so a key rotates by adding the new one, switching the current id, then retiring the old.
    jwt_signing_keys: dict[str, SecretStr] = Field(default_factory=dict)
    jwt_current_kid: str = ""
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_days: int = Field(default=30, ge=1)
    login_max_failures: int = Field(default=10, ge=1)
    login_lockout_minutes: int = Field(default=30, ge=1)
    password_min_length: int = Field(default=12, ge=8)
    one_time_token_ttl_minutes: int = Field(default=60, ge=5)

    # --- providers -------------------------------------------------------------------
    public_url: str = "http://127.0.0.1:8000"
    # "sandbox" writes each message as an .eml file under data_dir/outbox; "smtp" sends it
    # (SendGrid's SMTP relay in production).
    email_provider: Literal["sandbox", "smtp"] = "sandbox"
    email_from: str = "diBoaS <no-reply@diboas.com>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    run_worker_in_process: bool = True
    # A job whose worker stopped heartbeating this long ago (it died) is picked up again.
    job_heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    # Provider health checks (provider_health{provider}), run by the API process.
    provider_health_interval_seconds: float = Field(default=30.0, gt=0)
    provider_health_timeout_seconds: float = Field(default=5.0, gt=0)
    # Sagas: how long after a provider's answer was lost the provider is first asked what it
    # did (then with backoff, doubling up to the maximum), and how long a payment may wait for
    # the customer's authentication (3-D Secure) before it is canceled.
    saga_reconcile_delay_seconds: float = Field(default=30.0, gt=0)
    saga_reconcile_max_delay_seconds: float = Field(default=3600.0, gt=0)
    saga_customer_action_timeout_seconds: float = Field(default=1800.0, gt=0)
    # Returned bank debits: how often the bank's returns are read.
    ach_returns_poll_seconds: float = Field(default=60.0, gt=0)
    # KYC: the sandbox by default; Persona or Jumio with their credentials.
    kyc_provider: Literal["sandbox", "persona", "jumio"] = "sandbox"
    persona_api_key: SecretStr | None = None
    persona_inquiry_template_id: str = ""
    persona_base_url: str = "https://api.withpersona.com"
    persona_api_version: str = "2023-01-05"
    jumio_api_token: str = ""
    jumio_api_secret: SecretStr | None = None
    jumio_account_base_url: str = "https://account.amer-1.jumio.ai"
    jumio_retrieval_base_url: str = "https://retrieval.amer-1.jumio.ai"
    jumio_workflow_key: int = 10020
    kyc_timeout_seconds: float = Field(default=10.0, gt=0)
    kyc_poll_interval_seconds: float = Field(default=1.0, gt=0)
    kyc_poll_timeout_seconds: float = Field(default=15.0, gt=0)
    # SMS: the sandbox writes data_dir/sms-outbox; Twilio sends.
    sms_provider: Literal["sandbox", "twilio"] = "sandbox"
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str = ""
    twilio_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)
    # Stripe (card payments); the sandbox serves payments while no key is set.
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: SecretStr | None = None
    stripe_timeout_seconds: float = Field(default=10.0, gt=0)
    # How soon a payment still waiting at Stripe (3-D Secure, processing) is asked about again
    # when no webhook has settled it.
    stripe_poll_interval_seconds: float = Field(default=30.0, gt=0)
    # Exchanges (investing): venues in order of preference, comma-separated, from
    # sandbox-binance, sandbox-coinbase (in process, deterministic), binance, coinbase (ccxt).
    exchange_venues: str = "sandbox-binance,sandbox-coinbase"
    exchange_binance_api_key: str = ""
    exchange_binance_secret: SecretStr | None = None
    # Empty: Binance's own hosts; a base URL points ccxt at a Binance-shaped server instead.
    exchange_binance_api_url: str = ""
    exchange_binance_quote: str = "USDT"
    exchange_coinbase_api_key: str = ""
    exchange_coinbase_secret: SecretStr | None = None
    # Empty: api.coinbase.com; a base URL points ccxt at a Coinbase-shaped server instead.
    exchange_coinbase_api_url: str = ""
    exchange_timeout_seconds: float = Field(default=10.0, gt=0)
    # A trade quote locks its price (and holds the money) for this long.
    investing_quote_ttl_seconds: int = Field(default=30, ge=5)
    # After a venue's answer was lost, how long before the venue is asked what it did.
    investing_reconcile_delay_seconds: float = Field(default=30.0, ge=0)
    # Deposit-then-buy in one request: how far the price may rise (basis points) between the
    # request and the buy made once the deposit settles, and how often the deposit is looked at.
    investing_funded_max_slippage_bps: int = Field(default=100, ge=0, le=1000)
    investing_funding_poll_seconds: float = Field(default=1.0, gt=0)
    # Market data older than this is never used to quote a trade (503 market_data_stale), and a
    # balance valued with it says so (price_stale).
    market_max_price_age_seconds: float = Field(default=60.0, gt=0)

    # Chain (Ethereum JSON-RPC: an Alchemy/Infura URL, or a local anvil). Empty: no chain —
    # DeFi runs on the deterministic sandbox protocol and no deposit watcher runs.
    chain_rpc_url: str = ""
    chain_rpc_timeout_seconds: float = Field(default=10.0, gt=0)
    # A deposit is credited once its block has this many confirmations (its own included); a
    # reorganisation shallower than this never credits twice nor credits a vanished transfer.
    chain_confirmations: int = Field(default=12, ge=1)
    # The USDC token watched for deposits (and the vault's asset); empty: none watched.
    chain_usdc_address: str = ""
    chain_watch_native: bool = True  # ether sent straight to deposit addresses
    chain_watch_from_block: int = Field(default=0, ge=0)
    chain_watch_batch_blocks: int = Field(default=500, ge=1)
    chain_scan_interval_seconds: float = Field(default=5.0, gt=0)
    # The ledger domain on-chain deposits are credited to (custody that DeFi strategies use).
    chain_deposit_domain: Literal["banking", "investing", "defi"] = "defi"
    # Gas limit = the node's estimate times this; sends refuse fees above the cap (None: no cap).
    chain_gas_limit_margin: Decimal = Field(default=Decimal("1.2"), ge=1)
    chain_max_fee_per_gas_gwei: Decimal | None = Field(default=None, gt=0)
    # DeFi protocols on that chain (the sandbox protocol while chain_rpc_url is empty).
    defi_vault_address: str = ""
    defi_uniswap_router_address: str = ""
    defi_weth_address: str = ""
    defi_slippage_bps: int = Field(default=50, ge=0, le=5000)
    defi_swap_deadline_seconds: int = Field(default=300, ge=10)
    defi_sandbox_apy: Decimal = Field(default=Decimal("0.05"), ge=0, le=1)
    # DeFi strategies (diboas.defi): deposits accepted within this window share one vault
    # transaction (and its gas); the second ("growth") vault — a sandbox vault of its own
    # earning defi_growth_sandbox_apy, or on a chain the vault at defi_growth_vault_address
    # (its strategy is unavailable without one); the platform's omnibus key on a chain.
    defi_batch_window_seconds: float = Field(default=2.0, ge=0)
    defi_growth_vault_address: str = ""
    defi_growth_sandbox_apy: Decimal = Field(default=Decimal("0.12"), ge=0, le=1)
    defi_hot_wallet_key: SecretStr | None = None
    defi_accrual_interval_seconds: float = Field(default=300.0, gt=0)
    defi_apy_window_days: int = Field(default=30, ge=1)
    defi_apy_min_history_seconds: int = Field(default=3600, ge=1)
    # An investment funded by a deposit in the same request checks on it this often.
    defi_funding_poll_seconds: float = Field(default=1.0, gt=0)
    # Development chains: with no vault address configured, `diboas run` deploys the contracts
    # (and seeds a Uniswap pool) with this key and keeps their addresses under data_dir/chain.
    chain_deployer_key: SecretStr | None = None

    # --- limits ----------------------------------------------------------------------
    # KYC tier 1 daily limits in USD (DESIGN §4); monthly is tier1_monthly_multiple times the
    # daily figure; tier 2 is tier2_multiple times tier 1. Tier 0 moves no money.
    tier1_daily_deposit_usd: Decimal = Field(default=Decimal("10000"), gt=0)
    tier1_daily_withdrawal_usd: Decimal = Field(default=Decimal("5000"), gt=0)
    tier1_daily_transfer_usd: Decimal = Field(default=Decimal("5000"), gt=0)
    tier1_monthly_multiple: int = Field(default=3, ge=1)
    tier2_multiple: int = Field(default=10, ge=1)
    fee_quote_ttl_seconds: int = Field(default=60, ge=5)
    # Per client (DESIGN §4), in the `limits` notation ("10/second", "100/minute"): every
    # /api/v1 route, and /api/v1/auth/* on its own stricter budget.
    api_rate_limit: str = "10/second"
    auth_rate_limit: str = "5/second"
    rate_limits_enabled: bool = True
    # None: required in production, not in development and test (DESIGN §4).
    require_email_verification: bool | None = None
    idempotency_ttl_hours: int = Field(default=24, ge=24)
    # An in-flight idempotency key whose request died is taken over after this long.
    idempotency_lease_seconds: int = Field(default=60, ge=1)
    hold_default_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    partition_months_ahead: int = Field(default=3, ge=1, le=24)

    # --- business app ----------------------------------------------------------------
    # Loopback (127.0.0.0/8, ::1) is on every organisation's IP allow-list: None means in
    # development and test (DESIGN §4), never in production.
    business_allow_loopback: bool | None = None
    # Proxies (CIDRs) whose X-Forwarded-For is believed, e.g. the nginx in front; others' is
    # ignored and the connection's own address is the client's.
    business_trusted_proxies: list[str] = Field(default_factory=list)
    business_payout_max_rows: int = Field(default=1000, ge=1)
    business_payout_max_bytes: int = Field(default=1_000_000, ge=100)
    business_export_max_rows: int = Field(default=100_000, ge=1)

    # --- demo ------------------------------------------------------------------------
    demo_data: bool = True

    @field_validator("business_trusted_proxies")
    @classmethod
    def _trusted_proxies_are_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _previous_encryption_keys_are_other_versions(self) -> Settings:
        for version in self.encryption_keys_previous:
            if not 1 <= version <= 32767:
                raise ValueError(
                    f"DIBOAS_ENCRYPTION_KEYS_PREVIOUS: version {version} is not 1-32767"
                )
            if version == self.encryption_key_version:
                raise ValueError(
                    f"DIBOAS_ENCRYPTION_KEYS_PREVIOUS lists version {version}, the current "
                    "version (DIBOAS_ENCRYPTION_KEY_VERSION)"
                )
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Settings:
        if self.env != "production":
            return self
        weak = [
            name
            for name, value, default in (
                ("DIBOAS_SECRET_KEY", self.secret_key, DEFAULT_SECRET_KEY),
                ("DIBOAS_ENCRYPTION_KEY", self.encryption_key, DEFAULT_ENCRYPTION_KEY),
                *(
                    ("DIBOAS_SECRET_KEY_PREVIOUS", previous, DEFAULT_SECRET_KEY)
                    for previous in self.secret_key_previous
                ),
                *(
                    (
                        f"DIBOAS_ENCRYPTION_KEYS_PREVIOUS[{version}]",
                        previous,
                        DEFAULT_ENCRYPTION_KEY,
                    )
                    for version, previous in sorted(self.encryption_keys_previous.items())
                ),
            )
            if value.get_secret_value() == default or len(value.get_secret_value()) < 32
        ]
        if weak:
            raise InsecureSettingsError(
                "production refuses to start with default or short secrets: " + ", ".join(weak)
            )
        return self

    @property
    def secret_keys(self) -> tuple[bytes, ...]:
        """Every secret key that verifies, the one that signs first."""
        return tuple(
            key.get_secret_value().encode() for key in (self.secret_key, *self.secret_key_previous)
        )

    @property
    def encryption_keys(self) -> dict[int, str]:
        """Every encryption secret by key version, the current one included."""
        keys = {v: secret.get_secret_value() for v, secret in self.encryption_keys_previous.items()}
        keys[self.encryption_key_version] = self.encryption_key.get_secret_value()
        return keys

    @property
    def email_verification_required(self) -> bool:
        if self.require_email_verification is not None:
            return self.require_email_verification
        return self.env == "production"

    @property
    def embedded_database(self) -> bool:
        return not self.database_url.strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
