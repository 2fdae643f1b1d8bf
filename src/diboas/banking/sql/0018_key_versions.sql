-- A bank account's fingerprint (to refuse linking the same account twice) records the
-- encryption key version it was made under, as the sealed number already records its own.
-- Until now every fingerprint was made under version 1, hence the default — which also keeps
-- rows inserted by a process still running the previous release right. A rotation makes new
-- fingerprints under the new version, `diboas keys reseal` recomputes old ones, and a link
-- compares against the fingerprint under every configured version meanwhile.
ALTER TABLE bank_accounts
    ADD COLUMN fingerprint_version smallint NOT NULL DEFAULT 1
        CONSTRAINT bank_accounts_fingerprint_version_check CHECK (fingerprint_version >= 1);
ALTER TABLE bank_accounts
    ADD CONSTRAINT bank_accounts_key_version_check CHECK (key_version >= 1);
