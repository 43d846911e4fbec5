"""How a charge attempt ends: what an approval keeps of the processor's answer."""
from __future__ import annotations

from sqlalchemy import select

from gateway.models import Charge
from gateway.payments.attempts import record_charge
from gateway.processors.base import ProcessorCharge

from .. import factories


def approval_recorded(services, avs: str, cvv: str) -> Charge:  # type: ignore[no-untyped-def]
    """An attempt in flight whose sale the processor approved with these AVS and CVV codes."""
    with factories.bound(services):
        payment = factories.PaymentFactory(state="authorizing", attempt=1, card_brand="visa", card_last4="4242",
                                           card_exp_month=12, card_exp_year=2039)
    answer = ProcessorCharge("60123456789", payment.amount_total, payment.currency, "visa", "4242",
                             avs_result=avs, cvv_result=cvv)
    assert record_charge(services, payment.id, 1, answer) is not None
    with services.db.transaction() as session:
        return session.scalars(select(Charge).where(Charge.payment_id == payment.id)).one()


def test_an_approval_keeps_its_avs_and_cvv_results(services):
    charge = approval_recorded(services, "N", "N")
    assert (charge.avs_result, charge.cvv_result, charge.processor_transaction_id) == ("N", "N", "60123456789")


def test_an_overlong_result_code_never_costs_the_charge_its_record(services):
    charge = approval_recorded(services, "YYYYYY", "")
    assert (charge.avs_result, charge.cvv_result) == ("YYYY", "")
