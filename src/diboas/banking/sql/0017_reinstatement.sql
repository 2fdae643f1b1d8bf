-- A chargeback the platform wins: the card network gives the money back, and the customer
-- gets back what the chargeback took. Its own history row ('reinstatement', related to the
-- deposit), as the chargeback had its 'reversal' row; the deposit keeps its 'reversed' status
-- (it was reversed; the reinstatement is a later, separate movement).
ALTER TABLE transactions DROP CONSTRAINT transactions_type_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_check
    CHECK (type IN ('deposit', 'withdrawal', 'transfer_out', 'transfer_in', 'buy', 'sell',
                    'defi_deposit', 'defi_withdraw', 'reversal', 'crypto_deposit',
                    'reinstatement'));
