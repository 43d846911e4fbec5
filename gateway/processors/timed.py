"""A processor wrapped so every call is timed and counted, whichever connector is configured."""
from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from .. import admission
from ..observability.metrics import PROCESSOR_SECONDS
from ..vault import Credentials
from .base import Adjustment, ChargeRef, Processor, ProcessorCharge, ProcessorError, SaleLookup, SaleLookupResult, SaleRequest

T = TypeVar("T")


class TimedProcessor:
    """Delegates to the real connector; anything else (``settle``, ``name``) passes straight through."""

    def __init__(self, inner: Processor) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _timed(self, operation: str, call: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        outcome = "ok"
        try:
            with admission.network_wait():
                return call(*args)
        except ProcessorError as exc:
            outcome = exc.code
            raise
        except Exception:
            outcome = "crashed"
            raise
        finally:
            PROCESSOR_SECONDS.labels(self.inner.name, operation, outcome).observe(time.monotonic() - started)

    def sale(self, request: SaleRequest) -> ProcessorCharge:
        return self._timed("sale", self.inner.sale, request)

    def void(self, charge: ChargeRef, credentials: Credentials) -> Adjustment:
        return self._timed("void", self.inner.void, charge, credentials)

    def refund(self, charge: ChargeRef, amount: int, credentials: Credentials) -> Adjustment:
        return self._timed("refund", self.inner.refund, charge, amount, credentials)

    def is_settled(self, charge: ChargeRef, credentials: Credentials) -> bool:
        return self._timed("is_settled", self.inner.is_settled, charge, credentials)

    def find_sale(self, lookup: SaleLookup) -> SaleLookupResult:
        return self._timed("find_sale", self.inner.find_sale, lookup)
