"""Live updates: transaction and balance changes pushed to the customer's open WebSockets."""
