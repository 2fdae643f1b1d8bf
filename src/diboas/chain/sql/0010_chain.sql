-- Chain custody: wallets with sealed keys, deposits seen on chain, and the watcher's cursor.

-- One custodial key per (chain, owner, purpose): a user's deposit address, the platform's hot
-- wallet. The private key is sealed with AES-256-GCM (kit/crypto.py) under a versioned key,
-- bound to the row (id and address): ciphertext copied to another row does not open.
CREATE TABLE chain_wallets (
    id uuid PRIMARY KEY,
    chain_id bigint NOT NULL CHECK (chain_id > 0),
    owner_type text NOT NULL CHECK (owner_type IN ('user', 'organisation', 'platform')),
    owner_id uuid NOT NULL,
    purpose text NOT NULL CHECK (purpose IN ('deposit', 'hot')),
    address text NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),  -- lower case
    key_ciphertext bytea NOT NULL,
    key_version smallint NOT NULL CHECK (key_version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain_id, address),
    UNIQUE (chain_id, owner_type, owner_id, purpose)
);

-- A transfer to a deposit address, by (chain, transaction, log index): -1 for ether carried
-- by the transaction itself. 'seen' until it has enough confirmations, then 'credited' (with
-- its ledger entry) — or 'orphaned' when a reorganisation removed it (it returns to 'seen' if
-- it is mined again). A credited deposit never changes again.
CREATE TABLE chain_deposits (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id bigint NOT NULL,
    tx_hash text NOT NULL CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    log_index integer NOT NULL CHECK (log_index >= -1),
    wallet_id uuid NOT NULL REFERENCES chain_wallets (id),
    asset text NOT NULL REFERENCES assets (code),
    token text CHECK (token ~ '^0x[0-9a-f]{40}$'),  -- NULL for ether
    from_address text NOT NULL,
    to_address text NOT NULL,
    amount numeric NOT NULL CHECK (amount > 0),
    block_number bigint NOT NULL,
    block_hash text NOT NULL,
    status text NOT NULL DEFAULT 'seen' CHECK (status IN ('seen', 'credited', 'orphaned')),
    entry_id bigint,
    entry_created_at timestamptz,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    credited_at timestamptz,
    UNIQUE (chain_id, tx_hash, log_index),
    CHECK ((status = 'credited') = (entry_id IS NOT NULL AND credited_at IS NOT NULL))
);
CREATE INDEX chain_deposits_open ON chain_deposits (chain_id, block_number) WHERE status <> 'credited';
CREATE INDEX chain_deposits_wallet ON chain_deposits (wallet_id, first_seen_at);

CREATE FUNCTION chain_deposits_credited_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'credited' THEN
        RAISE EXCEPTION 'chain deposit % is credited and cannot change', OLD.id
            USING ERRCODE = 'LD002';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;
CREATE TRIGGER chain_deposits_final BEFORE UPDATE OR DELETE ON chain_deposits
    FOR EACH ROW EXECUTE FUNCTION chain_deposits_credited_is_final();

-- How far the deposit watcher has scanned each chain.
CREATE TABLE chain_cursors (
    chain_id bigint NOT NULL,
    name text NOT NULL,
    block_number bigint NOT NULL CHECK (block_number >= -1),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, name)
);
