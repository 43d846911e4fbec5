"""The domain: payments from checkout to completion, their charges, voids, refunds and reversals.

Typed commands in (``commands``), typed outcomes or ``errors.Refused`` out; the wire protocol stays
in gateway.web and gateway.protocol (docs/architecture.md)."""
