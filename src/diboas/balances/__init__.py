"""The Balance service: one balance across domains, valued in USD, now or at any instant."""
