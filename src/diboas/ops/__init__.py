"""Operations: what operators run beside the platform (key rotation, …)."""
