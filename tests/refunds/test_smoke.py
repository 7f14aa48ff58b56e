import pytest

from merchants.models import Account
from refunds.models import Refund
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_partial_refund_holds_money_and_goes_straight_to_approved():
    m = f.merchant(funded=0)
    p = f.payment(m, amount=10000)
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 10000
    r = f.refund(m, p, 3000)
    assert r.status == Refund.Status.APPROVED
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT) == 7000
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 3000
    p.refresh_from_db()
    assert p.refundable_amount == 7000
