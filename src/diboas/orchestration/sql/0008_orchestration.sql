-- Sagas and reversals.
--
-- Every money movement that talks to a provider is a saga: its current state is kept on the
-- transaction (saga_state), and every step it took is appended to saga_steps, which the
-- transaction history shows. A step is never updated or deleted.

ALTER TABLE transactions ADD COLUMN saga_state text;

-- The reconciliation job looks for sagas parked with an ambiguous provider outcome, and the
-- bounded wait for a customer's action for deposits still waiting on them.
CREATE INDEX transactions_saga_attention ON transactions (saga_state, updated_at)
    WHERE saga_state IN ('ambiguous', 'awaiting_customer');

CREATE TABLE saga_steps (
    id bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id uuid NOT NULL,
    state text NOT NULL CHECK (length(state) BETWEEN 1 AND 64),
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX saga_steps_transaction ON saga_steps (transaction_id, id);

CREATE FUNCTION saga_steps_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'saga steps are append-only' USING ERRCODE = 'LD002';
END $$;

CREATE TRIGGER saga_steps_no_update BEFORE UPDATE OR DELETE ON saga_steps
    FOR EACH ROW EXECUTE FUNCTION saga_steps_append_only();

-- What a customer owes the platform after a reversal took back more than they had (a
-- chargeback or a returned bank debit of money already spent). The account's balance is
-- zero or negative: it is the debt, never clipped. While it is negative the customer's
-- money cannot leave, and incoming money pays it off first.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('available', 'held', 'owed', 'fees', 'clearing', 'external', 'suspense', 'rounding'));
ALTER TABLE accounts DROP CONSTRAINT accounts_customer_kinds;
ALTER TABLE accounts ADD CONSTRAINT accounts_customer_kinds
    CHECK (owner_type = 'platform' OR kind IN ('available', 'held', 'owed'));

CREATE OR REPLACE FUNCTION ledger_open_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances (account_id, asset, scale, non_negative)
    SELECT NEW.id, NEW.asset, a.scale, NEW.owner_type <> 'platform' AND NEW.kind <> 'owed'
      FROM assets a WHERE a.code = NEW.asset;
    RETURN NULL;
END $$;
