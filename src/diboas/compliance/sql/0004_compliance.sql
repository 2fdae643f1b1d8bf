-- KYC submissions, the sanctions list (kept as data), and the append-only audit log.

CREATE TABLE kyc_submissions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    provider text NOT NULL,
    provider_reference text,
    status text NOT NULL CHECK (status IN ('approved', 'rejected', 'pending_review')),
    tier smallint NOT NULL CHECK (tier BETWEEN 0 AND 2),
    reason text,
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    document_type text NOT NULL,
    -- Only the last four characters of the document number are kept here.
    document_last4 text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz
);

CREATE INDEX kyc_submissions_user ON kyc_submissions (user_id, created_at DESC);

CREATE TABLE sanctions_entries (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    list text NOT NULL,
    name text NOT NULL,
    -- Lower-case ASCII letters and single spaces, words sorted: the form screening compares.
    normalized_name text NOT NULL,
    country text,
    added_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sanctions_entries_name ON sanctions_entries (normalized_name);

CREATE SEQUENCE audit_log_id_seq AS bigint;

CREATE TABLE audit_log (
    id bigint NOT NULL DEFAULT nextval('audit_log_id_seq'),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id uuid,
    actor_role text,
    action text NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    outcome text NOT NULL DEFAULT 'success' CHECK (outcome IN ('success', 'failure', 'refused')),
    subject_type text,
    subject_id text,
    ip text,
    request_id text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
CREATE INDEX audit_log_actor ON audit_log (actor_id, created_at DESC);
CREATE INDEX audit_log_subject ON audit_log (subject_type, subject_id);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
