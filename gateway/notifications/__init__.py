"""Telling the store: the CompleteOrderRequest outbox, its HTTP client and its delivery worker."""
