"""Compliance: KYC tiers and limits, sanctions screening, and the audit log."""
