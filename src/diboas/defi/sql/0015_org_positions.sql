-- Organisations invest their treasury too: a position belongs to exactly one owner, a user or
-- an organisation. Two nullable foreign keys (rather than an owner_type/owner_id pair) keep
-- PostgreSQL checking that the owner exists; the CHECK makes the pair exclusive.
ALTER TABLE defi_positions ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE defi_positions ADD COLUMN organisation_id uuid REFERENCES organisations (id);
ALTER TABLE defi_positions ADD CONSTRAINT defi_positions_one_owner
    CHECK (num_nonnulls(user_id, organisation_id) = 1);
CREATE INDEX defi_positions_organisation ON defi_positions (organisation_id, created_at DESC)
    WHERE organisation_id IS NOT NULL;

-- An organisation's risk profile, set by one of its admins (who is recorded); without one the
-- default applies, as for a user.
CREATE TABLE defi_organisation_risk_profiles (
    organisation_id uuid PRIMARY KEY REFERENCES organisations (id),
    max_risk_score smallint NOT NULL CHECK (max_risk_score BETWEEN 1 AND 5),
    set_by uuid NOT NULL REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);
