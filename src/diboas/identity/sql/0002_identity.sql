-- Users. Emails are stored lower-cased; passwords only as Argon2id hashes.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    full_name text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role text NOT NULL DEFAULT 'customer'
        CHECK (role IN ('customer', 'business_admin', 'business_member', 'support', 'admin')),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'locked', 'closed')),
    email_verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email ON users (email);
