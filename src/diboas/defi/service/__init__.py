"""The DeFi service: the catalog and risk rules (``catalog``), investing and withdrawing
(``movements``, accepted in the request), the vault work done by jobs (``settlement``) and
marking positions to the vault's share price (``valuation``)."""
