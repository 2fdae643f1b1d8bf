-- An investment funded by a deposit made in the same request waits for that deposit
-- ('funding') before it joins a batch.
ALTER TABLE defi_positions DROP CONSTRAINT defi_positions_status_check;
ALTER TABLE defi_positions ADD CONSTRAINT defi_positions_status_check
    CHECK (status IN ('funding', 'pending', 'batched', 'open', 'closed', 'failed'));
