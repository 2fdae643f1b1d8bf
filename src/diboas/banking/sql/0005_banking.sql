-- What users see of their money movements (the ledger holds the money itself), linked bank
-- accounts, the fee schedule and fee quotes.

-- One row per movement per user (a P2P transfer is a transfer_out for the sender and a
-- transfer_in for the recipient). Ids are UUIDv7; created_at is the id's own timestamp, so
-- a lookup by id names its partition.
CREATE TABLE transactions (
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id),
    type text NOT NULL CHECK (type IN ('deposit', 'withdrawal', 'transfer_out', 'transfer_in',
                                       'buy', 'sell', 'defi_deposit', 'defi_withdraw', 'reversal')),
    status text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'reversed')),
    domain text NOT NULL CHECK (domain IN ('banking', 'investing', 'defi')),
    asset text NOT NULL REFERENCES assets (code),
    amount numeric NOT NULL CHECK (amount > 0),
    fee numeric NOT NULL DEFAULT 0 CHECK (fee >= 0),
    method text,
    provider text,
    provider_reference text,
    counterparty_user_id uuid,
    related_transaction_id uuid,
    bank_account_id uuid,
    hold_id uuid,
    quote_id uuid,
    failure_code text,
    failure_reason text,
    description text CHECK (length(description) <= 500),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX transactions_user_history ON transactions (user_id, created_at DESC, id DESC);
CREATE INDEX transactions_id ON transactions (id);
CREATE INDEX transactions_open ON transactions (status, created_at) WHERE status IN ('pending', 'processing');
CREATE INDEX transactions_provider_reference ON transactions (provider, provider_reference)
    WHERE provider_reference IS NOT NULL;

-- Bank account numbers are encrypted (AES-256-GCM, key version kept per row); only the last
-- four digits and an HMAC fingerprint (to refuse duplicates) are stored in the clear.
CREATE TABLE bank_accounts (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    holder_name text NOT NULL CHECK (length(holder_name) BETWEEN 1 AND 200),
    bank_name text NOT NULL CHECK (length(bank_name) BETWEEN 1 AND 200),
    routing_number text NOT NULL CHECK (routing_number ~ '^[0-9]{9}$'),
    account_number_ciphertext bytea NOT NULL,
    key_version smallint NOT NULL,
    account_last4 text NOT NULL CHECK (account_last4 ~ '^[0-9]{4}$'),
    fingerprint bytea NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz
);

CREATE UNIQUE INDEX bank_accounts_unique_active ON bank_accounts (user_id, fingerprint) WHERE status = 'active';

-- The fee schedule is data: one row per component of a fee. A row applies to an operation
-- and, where given, a method, a KYC tier and a provider (NULL means any).
CREATE TABLE fee_schedule (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation text NOT NULL CHECK (operation IN ('deposit', 'withdrawal', 'transfer', 'buy', 'sell',
                                                 'defi_deposit', 'defi_withdraw')),
    method text,
    tier smallint CHECK (tier BETWEEN 0 AND 2),
    provider text,
    component text NOT NULL CHECK (component IN ('platform', 'provider', 'network')),
    currency text NOT NULL REFERENCES assets (code),
    percent numeric NOT NULL DEFAULT 0 CHECK (percent >= 0 AND percent < 100),
    fixed numeric NOT NULL DEFAULT 0 CHECK (fixed >= 0),
    minimum numeric NOT NULL DEFAULT 0 CHECK (minimum >= 0),
    maximum numeric CHECK (maximum IS NULL OR maximum >= minimum),
    description text NOT NULL,
    active boolean NOT NULL DEFAULT true
);

INSERT INTO fee_schedule (operation, method, provider, component, currency, percent, fixed, minimum, maximum, description) VALUES
    ('deposit', 'card', NULL, 'provider', 'USD', 2.9, 0.30, 0, NULL, 'Card processing (2.9% + $0.30)'),
    ('deposit', 'card', NULL, 'platform', 'USD', 0.5, 0, 0, 25.00, 'Instant card top-up (0.5%, at most $25)'),
    ('deposit', 'ach', NULL, 'provider', 'USD', 0, 0, 0, NULL, 'ACH bank transfer (free)'),
    ('withdrawal', 'ach', NULL, 'provider', 'USD', 0, 0.25, 0, NULL, 'ACH payout ($0.25)'),
    ('withdrawal', 'ach', NULL, 'platform', 'USD', 0.1, 0.50, 0.50, 10.00, 'Withdrawal (0.1% + $0.50, at most $10)'),
    ('transfer', NULL, NULL, 'platform', 'USD', 0, 0, 0, NULL, 'Transfers between diBoaS users (free)'),
    ('buy', NULL, NULL, 'platform', 'USD', 1.0, 0, 0.99, NULL, 'Crypto purchase (1%, at least $0.99)'),
    ('sell', NULL, NULL, 'platform', 'USD', 1.0, 0, 0.99, NULL, 'Crypto sale (1%, at least $0.99)'),
    ('defi_deposit', NULL, NULL, 'platform', 'USD', 0.5, 0, 0, NULL, 'Strategy deposit (0.5%)'),
    ('defi_withdraw', NULL, NULL, 'platform', 'USD', 0.5, 0, 0, NULL, 'Strategy withdrawal (0.5%)');

CREATE TABLE fee_quotes (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    operation text NOT NULL,
    method text,
    currency text NOT NULL REFERENCES assets (code),
    amount numeric NOT NULL CHECK (amount > 0),
    platform_fee numeric NOT NULL CHECK (platform_fee >= 0),
    provider_fee numeric NOT NULL CHECK (provider_fee >= 0),
    network_fee numeric NOT NULL CHECK (network_fee >= 0),
    total_fee numeric NOT NULL CHECK (total_fee = platform_fee + provider_fee + network_fee),
    provider text NOT NULL,
    route jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    used_by_transaction_id uuid
);

CREATE INDEX fee_quotes_user ON fee_quotes (user_id, created_at DESC);
