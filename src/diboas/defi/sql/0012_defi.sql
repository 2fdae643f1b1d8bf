-- DeFi: the strategy catalog, users' risk profiles, positions (vault shares each user owns
-- inside the platform's omnibus wallet), the batches that deposit many users' money in one
-- vault transaction, and the vault share prices seen (the APY is derived from them).

CREATE TABLE defi_strategies (
    id text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{2,40}$'),
    name text NOT NULL,
    protocol text NOT NULL CHECK (protocol IN ('erc4626')),
    -- Which configured vault backs it: 'core' is the vault the settings choose (the sandbox,
    -- or DIBOAS_DEFI_VAULT_ADDRESS on a chain); 'growth' a second one.
    vault text NOT NULL CHECK (vault IN ('core', 'growth')),
    asset text NOT NULL REFERENCES assets (code),
    configured_apy numeric NOT NULL CHECK (configured_apy >= 0 AND configured_apy < 10),
    risk_score smallint NOT NULL CHECK (risk_score BETWEEN 1 AND 5),
    lockup_days integer NOT NULL DEFAULT 0 CHECK (lockup_days >= 0),
    min_amount numeric NOT NULL CHECK (min_amount > 0),
    description text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    -- Shares left over when a batch's minted shares are split among its users (each share
    -- rounded down): the platform's, at most one unit per user per batch.
    platform_shares numeric NOT NULL DEFAULT 0 CHECK (platform_shares >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO defi_strategies (id, name, protocol, vault, asset, configured_apy, risk_score,
                             lockup_days, min_amount, description) VALUES
    ('usdc-core', 'USDC Core Vault', 'erc4626', 'core', 'USDC', 0.05, 2, 0, 10.00,
     'USD converted to USDC and deposited in an ERC-4626 lending vault; withdraw at any time.'),
    ('usdc-growth', 'USDC Growth Vault', 'erc4626', 'growth', 'USDC', 0.12, 4, 30, 100.00,
     'A higher-yield ERC-4626 vault with more smart-contract and strategy risk; '
     'each deposit is locked for 30 days.');

CREATE TABLE defi_risk_profiles (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    max_risk_score smallint NOT NULL CHECK (max_risk_score BETWEEN 1 AND 5),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE defi_batches (
    id uuid PRIMARY KEY,
    strategy_id text NOT NULL REFERENCES defi_strategies (id),
    status text NOT NULL CHECK (status IN ('submitted', 'settled', 'failed', 'ambiguous')),
    assets numeric NOT NULL CHECK (assets > 0),
    deposits integer NOT NULL CHECK (deposits > 0),
    shares numeric,
    gas_wei numeric,
    gas_usd numeric,
    tx_hashes text[] NOT NULL DEFAULT '{}',
    failure text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One position per deposit (each has its own lock-up). Amounts in the strategy's asset.
CREATE TABLE defi_positions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    strategy_id text NOT NULL REFERENCES defi_strategies (id),
    status text NOT NULL CHECK (status IN ('pending', 'batched', 'open', 'closed', 'failed')),
    principal numeric NOT NULL CHECK (principal >= 0),   -- what was put in and is still in
    shares numeric NOT NULL DEFAULT 0 CHECK (shares >= 0),
    withdrawing_shares numeric NOT NULL DEFAULT 0 CHECK (withdrawing_shares >= 0),
    booked_value numeric NOT NULL DEFAULT 0 CHECK (booked_value >= 0), -- in the ledger
    deposit_transaction_id uuid NOT NULL,
    batch_id uuid REFERENCES defi_batches (id),
    locked_until timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (withdrawing_shares <= shares)
);

CREATE INDEX defi_positions_user ON defi_positions (user_id, created_at DESC);
CREATE INDEX defi_positions_pending ON defi_positions (strategy_id, created_at)
    WHERE status = 'pending';
CREATE INDEX defi_positions_open ON defi_positions (strategy_id) WHERE status = 'open';

-- Withdrawals in flight: which position, how many shares, at what fee.
CREATE TABLE defi_withdrawals (
    transaction_id uuid PRIMARY KEY,
    position_id uuid NOT NULL REFERENCES defi_positions (id),
    shares numeric NOT NULL CHECK (shares > 0),
    booked_value numeric NOT NULL CHECK (booked_value >= 0),
    principal numeric NOT NULL CHECK (principal >= 0),
    status text NOT NULL CHECK (status IN ('pending', 'settled', 'failed')),
    assets_received numeric,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The vault share prices seen (by deposits, withdrawals and the accrual job).
CREATE TABLE defi_share_prices (
    strategy_id text NOT NULL REFERENCES defi_strategies (id),
    at timestamptz NOT NULL DEFAULT now(),
    price numeric NOT NULL CHECK (price > 0),
    PRIMARY KEY (strategy_id, at)
);
