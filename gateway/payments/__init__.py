"""The payment state machine: checkout sessions, charging, completion, voids and refunds."""
