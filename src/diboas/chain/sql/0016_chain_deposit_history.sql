-- Chain deposits in the transaction history: each deposit to a user's address has one
-- 'crypto_deposit' transaction, pending while it gathers confirmations and completed when it
-- is credited. The link lives on the deposit row, keyed like every transaction lookup by
-- (id, created_at): a reorganisation that moves the transfer keeps the same deposit row (by
-- chain, tx hash and log index), so the history never shows it twice.
ALTER TABLE transactions DROP CONSTRAINT transactions_type_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_check
    CHECK (type IN ('deposit', 'withdrawal', 'transfer_out', 'transfer_in', 'buy', 'sell',
                    'defi_deposit', 'defi_withdraw', 'reversal', 'crypto_deposit'));

ALTER TABLE chain_deposits ADD COLUMN transaction_id uuid;
ALTER TABLE chain_deposits ADD COLUMN transaction_created_at timestamptz;
ALTER TABLE chain_deposits ADD CONSTRAINT chain_deposits_transaction_pair
    CHECK ((transaction_id IS NULL) = (transaction_created_at IS NULL));
CREATE UNIQUE INDEX chain_deposits_transaction ON chain_deposits (transaction_id)
    WHERE transaction_id IS NOT NULL;
