-- Investing: price-locked trade quotes (each tied to a ledger hold), filled orders, FIFO
-- lots and the disposals that consume them. Money and assets themselves live in the ledger;
-- these tables record what was agreed, what the venue did, and the cost basis.

-- A quote locks a price for a short time; the money (USD for a buy) or the asset (for a
-- sell) is held in the ledger until the quote is executed, expires or fails.
CREATE TABLE investing_quotes (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    side text NOT NULL CHECK (side IN ('buy', 'sell')),
    asset text NOT NULL REFERENCES assets (code),
    -- what the user asked for: a USD amount (buys only) or a quantity
    requested text NOT NULL CHECK (requested IN ('amount_usd', 'quantity')),
    quantity numeric NOT NULL CHECK (quantity > 0),
    amount_usd numeric NOT NULL CHECK (amount_usd > 0),
    price numeric NOT NULL CHECK (price > 0),
    platform_fee numeric NOT NULL CHECK (platform_fee >= 0),
    provider_fee numeric NOT NULL CHECK (provider_fee >= 0),
    network_fee numeric NOT NULL DEFAULT 0 CHECK (network_fee >= 0),
    total_fee numeric NOT NULL CHECK (total_fee = platform_fee + provider_fee + network_fee),
    venue text NOT NULL,
    route jsonb NOT NULL,
    hold_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'executed', 'expired', 'failed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    closed_at timestamptz,
    transaction_id uuid
);

CREATE INDEX investing_quotes_user ON investing_quotes (user_id, created_at DESC);
CREATE INDEX investing_quotes_open ON investing_quotes (expires_at) WHERE status = 'open';

-- One row per executed quote: what the user got at the locked price, and what the venue did.
CREATE TABLE investing_orders (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    quote_id uuid NOT NULL UNIQUE REFERENCES investing_quotes (id),
    transaction_id uuid NOT NULL UNIQUE,
    side text NOT NULL CHECK (side IN ('buy', 'sell')),
    asset text NOT NULL REFERENCES assets (code),
    quantity numeric NOT NULL CHECK (quantity > 0),
    price numeric NOT NULL CHECK (price > 0),
    amount_usd numeric NOT NULL CHECK (amount_usd > 0),
    fee_usd numeric NOT NULL CHECK (fee_usd >= 0),
    venue text NOT NULL,
    venue_order_id text NOT NULL,
    client_order_id text NOT NULL,
    venue_quantity numeric NOT NULL CHECK (venue_quantity > 0),
    venue_cost numeric NOT NULL CHECK (venue_cost > 0),
    venue_fee numeric NOT NULL CHECK (venue_fee >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (venue, client_order_id)
);

CREATE INDEX investing_orders_user ON investing_orders (user_id, created_at DESC);

-- FIFO lots: each buy opens one; sells consume the oldest first. cost_usd includes the
-- buy's fee; remaining_cost is what is left of it for the remaining quantity (the last
-- disposal of a lot takes exactly what is left, so no cent is lost to rounding).
CREATE TABLE investing_lots (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    asset text NOT NULL REFERENCES assets (code),
    order_id uuid NOT NULL REFERENCES investing_orders (id),
    quantity numeric NOT NULL CHECK (quantity > 0),
    remaining numeric NOT NULL CHECK (remaining >= 0 AND remaining <= quantity),
    cost_usd numeric NOT NULL CHECK (cost_usd >= 0),
    remaining_cost numeric NOT NULL CHECK (remaining_cost >= 0 AND remaining_cost <= cost_usd),
    acquired_at timestamptz NOT NULL
);

CREATE INDEX investing_lots_open ON investing_lots (user_id, asset, id) WHERE remaining > 0;

CREATE TABLE investing_disposals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lot_id bigint NOT NULL REFERENCES investing_lots (id),
    order_id uuid NOT NULL REFERENCES investing_orders (id),
    user_id uuid NOT NULL REFERENCES users (id),
    asset text NOT NULL REFERENCES assets (code),
    quantity numeric NOT NULL CHECK (quantity > 0),
    cost_basis numeric NOT NULL CHECK (cost_basis >= 0),
    proceeds numeric NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX investing_disposals_user ON investing_disposals (user_id, asset);
