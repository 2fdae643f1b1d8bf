-- Authentication state: login sessions (one per sign-in), their refresh tokens, and the
-- single-use tokens mailed for email verification and password reset.

ALTER TABLE users
    ADD COLUMN kyc_tier smallint NOT NULL DEFAULT 0 CHECK (kyc_tier BETWEEN 0 AND 2),
    ADD COLUMN kyc_status text NOT NULL DEFAULT 'none'
        CHECK (kyc_status IN ('none', 'pending_review', 'approved', 'rejected')),
    ADD COLUMN failed_logins integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    ADD COLUMN locked_until timestamptz,
    ADD COLUMN password_changed_at timestamptz NOT NULL DEFAULT now();

-- A session is one sign-in on one device: the "family" of its refresh tokens. Access tokens
-- name their session (`sid`), so revoking a session ends its access tokens at once.
CREATE TABLE auth_sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoke_reason text CHECK (revoke_reason IN ('logout', 'user', 'refresh_reuse', 'password_change', 'admin')),
    user_agent text CHECK (length(user_agent) <= 512),
    ip text CHECK (length(ip) <= 64)
);

CREATE INDEX auth_sessions_user ON auth_sessions (user_id) WHERE revoked_at IS NULL;

-- Opaque refresh tokens, stored only as SHA-256 digests. Each is used once: refreshing
-- rotates it; presenting a rotated one again revokes the whole session.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES auth_sessions (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE one_time_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id uuid NOT NULL REFERENCES users (id),
    purpose text NOT NULL CHECK (purpose IN ('email_verification', 'password_reset')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose);
