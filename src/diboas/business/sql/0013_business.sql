-- The business app: organisations and their members, API keys (hashed), IP allow-lists,
-- bulk payout batches with their rows. Organisation money lives in the ledger (accounts with
-- owner_type 'organisation'); these tables only say who may move it and what was asked.

CREATE TABLE organisations (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organisation_members (
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    user_id uuid NOT NULL REFERENCES users (id),
    role text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    added_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, user_id)
);

CREATE INDEX organisation_members_user ON organisation_members (user_id);

-- An organisation never loses its last admin, even through raw SQL: checked at commit, after
-- every change of the transaction (the service also locks the organisation row first, so two
-- concurrent demotions cannot both pass).
CREATE FUNCTION business_keep_an_admin() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.role = 'admin'
       AND EXISTS (SELECT 1 FROM organisations WHERE id = OLD.organisation_id)
       AND NOT EXISTS (SELECT 1 FROM organisation_members
                        WHERE organisation_id = OLD.organisation_id AND role = 'admin') THEN
        RAISE EXCEPTION 'organisation % would have no admin', OLD.organisation_id
            USING ERRCODE = 'BZ001';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER organisation_members_keep_an_admin
    AFTER UPDATE OR DELETE ON organisation_members
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION business_keep_an_admin();

-- API keys: only a hash of the secret is kept (business/service/api_keys.py says which); the
-- prefix is public and finds the row in one probe.
CREATE TABLE business_api_keys (
    id uuid PRIMARY KEY,
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{12}$'),
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes text[] NOT NULL CHECK (cardinality(scopes) >= 1),
    created_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    revoked_by uuid REFERENCES users (id)
);

CREATE INDEX business_api_keys_organisation ON business_api_keys (organisation_id, created_at);

CREATE TABLE organisation_ip_allowlist (
    id uuid PRIMARY KEY,
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    cidr cidr NOT NULL,
    label text CHECK (length(label) <= 100),
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, cidr)
);

CREATE TABLE payout_batches (
    id uuid PRIMARY KEY,
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    -- invalid: some row is wrong, it can never be executed (upload a corrected file);
    -- validated: every row is good; completed: every row was paid, in one transaction.
    status text NOT NULL CHECK (status IN ('invalid', 'validated', 'completed')),
    currency text NOT NULL REFERENCES assets (code),
    total numeric NOT NULL CHECK (total >= 0),
    row_count integer NOT NULL CHECK (row_count >= 0),
    invalid_count integer NOT NULL CHECK (invalid_count >= 0),
    filename text CHECK (length(filename) <= 255),
    file_sha256 bytea NOT NULL,
    created_by_user uuid REFERENCES users (id),
    created_by_key uuid REFERENCES business_api_keys (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    executed_at timestamptz,
    executed_by_user uuid REFERENCES users (id),
    executed_by_key uuid REFERENCES business_api_keys (id),
    CHECK ((status = 'completed') = (executed_at IS NOT NULL)),
    CHECK (status <> 'validated' OR invalid_count = 0)
);

CREATE INDEX payout_batches_organisation ON payout_batches (organisation_id, created_at DESC);

CREATE TABLE payout_rows (
    batch_id uuid NOT NULL REFERENCES payout_batches (id),
    line integer NOT NULL CHECK (line >= 2),
    recipient_email text NOT NULL CHECK (length(recipient_email) <= 320),
    recipient_id uuid REFERENCES users (id),
    amount_text text NOT NULL CHECK (length(amount_text) <= 64),
    amount numeric CHECK (amount > 0),
    currency text NOT NULL CHECK (length(currency) <= 16),
    note text CHECK (length(note) <= 500),
    status text NOT NULL CHECK (status IN ('ok', 'invalid', 'completed')),
    error_code text,
    error_message text,
    transaction_id uuid,
    PRIMARY KEY (batch_id, line),
    CHECK ((status = 'invalid') = (error_code IS NOT NULL)),
    CHECK (status = 'invalid' OR (recipient_id IS NOT NULL AND amount IS NOT NULL)),
    CHECK ((status = 'completed') = (transaction_id IS NOT NULL))
);
