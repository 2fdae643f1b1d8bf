"""Users and their credentials (login, tokens and roles arrive with the identity issue)."""
