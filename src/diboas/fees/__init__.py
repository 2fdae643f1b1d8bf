"""The Fee service: fees from the schedule (data), quotes with an expiry, fee postings."""
