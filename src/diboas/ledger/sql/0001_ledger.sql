-- The double-entry ledger. Every rule that keeps money from being created, lost or
-- duplicated is enforced here, in PostgreSQL, so it holds for raw SQL as much as for the
-- application: balanced entries (deferred constraint trigger), append-only journal,
-- balances written only by postings, non-negative user balances (CHECK), and a per-account
-- hash chain extended under the row lock the posting already holds.

-- Monthly range partitions, created ahead by `diboas partitions` (and at start-up).
CREATE FUNCTION ensure_monthly_partitions(p_parent regclass, p_from date, p_months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_start date := date_trunc('month', p_from)::date;
    v_end date;
    v_name text;
    v_created integer := 0;
BEGIN
    FOR i IN 0 .. p_months - 1 LOOP
        v_end := (v_start + interval '1 month')::date;
        v_name := format('%s_y%sm%s', p_parent::text, to_char(v_start, 'YYYY'), to_char(v_start, 'MM'));
        IF to_regclass(v_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           v_name, p_parent, v_start, v_end);
            v_created := v_created + 1;
        END IF;
        v_start := v_end;
    END LOOP;
    RETURN v_created;
END $$;

CREATE TABLE assets (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z0-9]{2,12}$'),
    scale smallint NOT NULL CHECK (scale BETWEEN 0 AND 18),
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('fiat', 'stablecoin', 'crypto'))
);

INSERT INTO assets (code, scale, name, kind) VALUES
    ('USD', 2, 'US Dollar', 'fiat'),
    ('EUR', 2, 'Euro', 'fiat'),
    ('USDC', 6, 'USD Coin', 'stablecoin'),
    ('BTC', 8, 'Bitcoin', 'crypto'),
    ('ETH', 18, 'Ether', 'crypto');

CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_type text NOT NULL CHECK (owner_type IN ('user', 'organisation', 'platform')),
    owner_id uuid NOT NULL,
    domain text NOT NULL CHECK (domain IN ('banking', 'investing', 'defi', 'platform')),
    asset text NOT NULL REFERENCES assets (code),
    kind text NOT NULL CHECK (kind IN ('available', 'held', 'fees', 'clearing', 'external', 'suspense', 'rounding')),
    -- Hot platform accounts are split into shards (summed on read) so that one row lock
    -- does not cap the platform's throughput.
    shard smallint NOT NULL DEFAULT 0 CHECK (shard >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_identity UNIQUE (owner_type, owner_id, domain, asset, kind, shard),
    CONSTRAINT accounts_customer_kinds CHECK (owner_type = 'platform' OR kind IN ('available', 'held'))
);

-- One row per account: its balance, and the head of its hash chain. Written only by the
-- posting trigger; fillfactor leaves room for HOT updates of this very hot table.
CREATE TABLE balances (
    account_id bigint PRIMARY KEY REFERENCES accounts (id),
    asset text NOT NULL,
    scale smallint NOT NULL,
    non_negative boolean NOT NULL,
    balance numeric NOT NULL DEFAULT 0,
    posting_count bigint NOT NULL DEFAULT 0,
    last_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
    last_posted_at timestamptz,
    CONSTRAINT balance_non_negative CHECK (NOT non_negative OR balance >= 0)
) WITH (fillfactor = 70);

CREATE SEQUENCE entries_id_seq AS bigint;

CREATE TABLE entries (
    id bigint NOT NULL DEFAULT nextval('entries_id_seq'),
    -- The instant the entry was written, after its accounts were locked: per account it
    -- follows the order of commits (checked by the posting trigger).
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    reference text CHECK (length(reference) <= 200),
    memo text CHECK (length(memo) <= 500),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

ALTER SEQUENCE entries_id_seq OWNED BY entries.id;
CREATE INDEX entries_reference ON entries (reference) WHERE reference IS NOT NULL;

CREATE TABLE postings (
    entry_id bigint NOT NULL,
    created_at timestamptz NOT NULL,
    account_id bigint NOT NULL,
    -- Filled by the posting trigger from the account's balance row; whatever a writer
    -- supplies for them is overwritten.
    account_seq bigint NOT NULL DEFAULT 0,
    asset text NOT NULL DEFAULT '',
    amount numeric NOT NULL CHECK (amount <> 0),
    balance_after numeric NOT NULL DEFAULT 0,
    hash bytea NOT NULL DEFAULT '\x'::bytea,
    -- Also the index behind "balance as of T": the newest posting at or before T.
    PRIMARY KEY (account_id, created_at, account_seq),
    FOREIGN KEY (entry_id, created_at) REFERENCES entries (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX postings_entry ON postings (entry_id);

-- How long a ledger transaction may stay open between writing an entry and committing it.
-- It bounds how far back a commit can land in time, so a balance "as of T" is final once
-- T is older than this window.
CREATE FUNCTION ledger_commit_window() RETURNS interval LANGUAGE sql IMMUTABLE AS $$
    SELECT interval '10 seconds'
$$;

-- The bytes a posting's hash covers, after the previous hash of its account.
CREATE FUNCTION ledger_posting_digest(
    p_prev bytea, p_entry_id bigint, p_account_id bigint, p_seq bigint, p_asset text,
    p_amount numeric, p_balance_after numeric, p_created_at timestamptz
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(p_prev || convert_to(concat_ws('|', p_entry_id, p_account_id, p_seq, p_asset,
        p_amount, p_balance_after, (extract(epoch FROM p_created_at) * 1000000)::bigint), 'UTF8'))
$$;

CREATE FUNCTION ledger_open_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances (account_id, asset, scale, non_negative)
    SELECT NEW.id, NEW.asset, a.scale, NEW.owner_type <> 'platform'
      FROM assets a WHERE a.code = NEW.asset;
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_open_balance AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_open_balance();

-- Balances are derived data: only the ledger's own triggers may write them.
CREATE FUNCTION ledger_guard_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'balances are written only by postings: % refused', TG_OP
            USING ERRCODE = 'LD002';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'balances cannot be deleted' USING ERRCODE = 'LD002';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.account_id, NEW.asset, NEW.scale, NEW.non_negative)
            IS DISTINCT FROM (OLD.account_id, OLD.asset, OLD.scale, OLD.non_negative) THEN
        RAISE EXCEPTION 'a balance''s account, asset and rules never change' USING ERRCODE = 'LD002';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE TRIGGER balances_guard BEFORE INSERT OR UPDATE OR DELETE ON balances
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_balances();

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'LD002';
END $$;

CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER balances_no_truncate BEFORE TRUNCATE ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Applies one posting to its account: checks the amount against the asset's scale,
-- extends the account's hash chain and moves its balance, all under the balance row lock.
CREATE FUNCTION ledger_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b balances%ROWTYPE;
BEGIN
    SELECT * INTO b FROM balances WHERE account_id = NEW.account_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown account %', NEW.account_id USING ERRCODE = 'LD004';
    END IF;
    IF NEW.amount <> round(NEW.amount, b.scale) THEN
        RAISE EXCEPTION 'amount % has more decimals than % allows (%)', NEW.amount, b.asset, b.scale
            USING ERRCODE = 'LD005';
    END IF;
    IF b.last_posted_at IS NOT NULL AND NEW.created_at < b.last_posted_at THEN
        -- Only a writer that did not lock its accounts before writing its entry gets here;
        -- running it again puts it in commit order.
        RAISE EXCEPTION 'posting to account % is older than its last posting', NEW.account_id
            USING ERRCODE = '40001';
    END IF;
    NEW.amount := round(NEW.amount, b.scale);
    NEW.asset := b.asset;
    NEW.account_seq := b.posting_count + 1;
    NEW.balance_after := b.balance + NEW.amount;
    NEW.hash := ledger_posting_digest(b.last_hash, NEW.entry_id, NEW.account_id, NEW.account_seq,
                                      NEW.asset, NEW.amount, NEW.balance_after, NEW.created_at);
    UPDATE balances
       SET balance = NEW.balance_after,
           posting_count = NEW.account_seq,
           last_hash = NEW.hash,
           last_posted_at = NEW.created_at
     WHERE account_id = NEW.account_id;
    RETURN NEW;
END $$;

CREATE TRIGGER postings_apply BEFORE INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting();

-- At commit: the entry of every new posting sums to zero per asset, and the transaction
-- committed within the commit window of the entry's timestamp.
CREATE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_asset text;
    v_total numeric;
    v_count integer;
BEGIN
    SELECT asset, sum(amount) INTO v_asset, v_total
      FROM postings
     WHERE entry_id = NEW.entry_id AND created_at = NEW.created_at
     GROUP BY asset HAVING sum(amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % is unbalanced: its % postings sum to %', NEW.entry_id, v_asset, v_total
            USING ERRCODE = 'LD001';
    END IF;
    SELECT count(*) INTO v_count FROM postings
     WHERE entry_id = NEW.entry_id AND created_at = NEW.created_at;
    IF v_count < 2 THEN
        RAISE EXCEPTION 'entry % has % posting(s); an entry needs at least two', NEW.entry_id, v_count
            USING ERRCODE = 'LD001';
    END IF;
    IF clock_timestamp() - NEW.created_at > ledger_commit_window() THEN
        RAISE EXCEPTION 'entry % committed later than the ledger commit window allows', NEW.entry_id
            USING ERRCODE = '40001';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry();

-- An entry with no postings at all is refused at commit too.
CREATE FUNCTION ledger_check_entry_has_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM postings WHERE entry_id = NEW.id AND created_at = NEW.created_at) THEN
        RAISE EXCEPTION 'entry % has no postings', NEW.id USING ERRCODE = 'LD001';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER entries_have_postings AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_has_postings();

-- The ledger's one write path: lock every account in id order (one fixed order for every
-- writer, so writers never deadlock), refuse with figures a movement that would take a
-- non-negative account below zero, then write the entry and its postings.
CREATE FUNCTION ledger_post(
    p_kind text, p_accounts bigint[], p_amounts numeric[],
    p_reference text DEFAULT NULL, p_memo text DEFAULT NULL, p_metadata jsonb DEFAULT '{}'::jsonb
) RETURNS TABLE (entry_id bigint, created_at timestamptz) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_id bigint;
    v_at timestamptz;
    v_locked integer;
    v_short record;
BEGIN
    IF coalesce(array_length(p_accounts, 1), 0) < 2
       OR array_length(p_accounts, 1) <> coalesce(array_length(p_amounts, 1), 0) THEN
        RAISE EXCEPTION 'an entry needs at least two postings, one amount per account'
            USING ERRCODE = 'LD001';
    END IF;
    SELECT count(*) INTO v_locked FROM (
        SELECT 1 FROM balances WHERE account_id = ANY (p_accounts) ORDER BY account_id FOR UPDATE
    ) locked;
    IF v_locked <> (SELECT count(DISTINCT a) FROM unnest(p_accounts) a) THEN
        RAISE EXCEPTION 'unknown account in %', p_accounts USING ERRCODE = 'LD004';
    END IF;
    SELECT b.account_id, b.asset, b.balance, -d.delta AS requested INTO v_short
      FROM balances b
      JOIN (SELECT a, sum(m) AS delta FROM unnest(p_accounts, p_amounts) AS u (a, m) GROUP BY a) d
        ON d.a = b.account_id
     WHERE b.non_negative AND b.balance + d.delta < 0
     ORDER BY b.account_id
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insufficient funds in account %', v_short.account_id
            USING ERRCODE = 'LD010',
                  DETAIL = json_build_object('account_id', v_short.account_id, 'asset', v_short.asset,
                                             'available', v_short.balance::text,
                                             'requested', v_short.requested::text)::text;
    END IF;
    INSERT INTO entries (kind, reference, memo, metadata)
    VALUES (p_kind, p_reference, p_memo, coalesce(p_metadata, '{}'::jsonb))
    RETURNING entries.id, entries.created_at INTO v_id, v_at;
    INSERT INTO postings (entry_id, created_at, account_id, amount)
    SELECT v_id, v_at, u.a, u.m FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS u (a, m, n)
     ORDER BY u.n;
    RETURN QUERY SELECT v_id, v_at;
END $$;

-- Holds: funds moved from an available account to its held twin until captured, released
-- or expired. The hold row is mutable state; every money movement of it is a ledger entry.
CREATE TABLE holds (
    id uuid PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    held_account_id bigint NOT NULL REFERENCES accounts (id),
    asset text NOT NULL REFERENCES assets (code),
    amount numeric NOT NULL CHECK (amount > 0),
    captured numeric NOT NULL DEFAULT 0 CHECK (captured >= 0),
    released numeric NOT NULL DEFAULT 0 CHECK (released >= 0),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'captured', 'released', 'expired')),
    reference text,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT holds_within_amount CHECK (captured + released <= amount),
    CONSTRAINT holds_closed_when_settled CHECK ((status = 'active') = (captured + released < amount))
);

CREATE INDEX holds_expiring ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_account ON holds (account_id);

-- Idempotency keys, scoped to their caller, with a fingerprint of the request.
CREATE TABLE idempotency_keys (
    scope text NOT NULL CHECK (length(scope) BETWEEN 1 AND 200),
    key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint text NOT NULL,
    state text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    claim_token uuid NOT NULL,
    status_code integer,
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    locked_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_completed_has_response CHECK (state = 'in_flight' OR status_code IS NOT NULL)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
