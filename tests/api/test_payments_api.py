import pytest

from merchants.models import Account, ApiKey
from merchants.services import api_key_create
from tests import factories as f

from .conftest import Api, error_of, payment_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/payments"


@pytest.fixture(autouse=True)
def _channels(db):
    f.channel("wechat")


def test_payment_core_reports_a_payment_of_any_merchant(core, merchant):
    body = payment_body(
        amount=10000,
        parts=[
            {"kind": "channel", "channel": "wechat", "amount": 8000, "channel_txn_id": "42000001"},
            {"kind": "balance", "amount": 1000},
            {"kind": "coupon", "amount": 1000, "coupon_id": "C-9"},
        ],
        settlement={"currency": "CNY", "amount": 10000},
        expires_at=None,
        auto_refund_on_expiry=False,
    )
    r = core.post(URL, body)
    assert r.status_code == 201, r.content
    data = r.json()
    assert data["merchant"] == "M001"
    assert data["out_trade_no"] == "T1001"
    assert data["refunded_amount"] == 0 and data["refundable_amount"] == 10000
    assert [(p["kind"], p["amount"], p["channel"]) for p in data["parts"]] == [
        ("channel", 8000, "wechat"), ("balance", 1000, None), ("coupon", 1000, None)
    ]
    assert data["parts"][2]["coupon_id"] == "C-9"
    assert data["paid_at"] == "2026-11-20T10:00:00+08:00"
    assert f.balance(merchant, Account.Kind.PENDING_SETTLEMENT) == 10000


def test_same_payment_reported_again_is_200_with_the_stored_payment(core, merchant):
    first = core.post(URL, payment_body())
    # The same instant written with another offset is the same payment.
    again = core.post(URL, payment_body(paid_at="2026-11-20T02:00:00Z"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert f.balance(merchant, Account.Kind.PENDING_SETTLEMENT) == 10000


def test_same_out_trade_no_with_other_content_is_409(core, merchant):
    core.post(URL, payment_body())
    r = core.post(URL, payment_body(user_id="someone-else"))
    assert r.status_code == 409
    assert error_of(r)["code"] == "OUT_TRADE_NO_CONFLICT"


def test_payment_of_unknown_merchant_is_404(core):
    r = core.post(URL, payment_body(merchant="NOPE"))
    assert r.status_code == 404
    assert error_of(r)["code"] == "MERCHANT_NOT_FOUND"


def test_parts_that_do_not_add_up_are_400(core, merchant):
    r = core.post(URL, payment_body(amount=10000, parts=[{"kind": "balance", "amount": 9000}]))
    assert r.status_code == 400
    assert error_of(r)["code"] == "INVALID_REQUEST"
    assert error_of(r)["param"] == "parts"
    assert "add up" in error_of(r)["message"]


def test_unknown_channel_is_400_naming_the_part(core, merchant):
    r = core.post(URL, payment_body(parts=[{"kind": "channel", "channel": "nope", "amount": 10000}]))
    assert r.status_code == 400
    assert error_of(r)["param"] == "parts[0].channel"
    r = core.post(URL, payment_body(parts=[{"kind": "channel", "amount": 10000}]))
    assert (r.status_code, error_of(r)["param"]) == (400, "parts[0].channel")


@pytest.mark.parametrize(
    ("change", "status", "code", "param"),
    [
        ({"amount": 0}, 422, "INVALID_AMOUNT", "amount"),
        ({"amount": -1}, 422, "INVALID_AMOUNT", "amount"),
        ({"amount": 2**63}, 422, "INVALID_AMOUNT", "amount"),
        ({"amount": "10000"}, 400, "INVALID_REQUEST", "amount"),
        ({"amount": 100.0}, 400, "INVALID_REQUEST", "amount"),
        ({"paid_at": "2026-11-20T10:00:00"}, 400, "INVALID_REQUEST", "paid_at"),
        ({"paid_at": "9999-12-31T23:59:59-14:00"}, 400, "INVALID_REQUEST", "paid_at"),
        ({"currency": "cny"}, 400, "INVALID_REQUEST", "currency"),
        ({"parts": []}, 400, "INVALID_REQUEST", "parts"),
        ({"parts": [{"kind": "gift", "amount": 10000}]}, 400, "INVALID_REQUEST", "parts[0].kind"),
        ({"parts": [{"kind": "balance", "amount": 0}]}, 422, "INVALID_AMOUNT", "parts[0].amount"),
        ({"settlement": {"currency": "CNY", "amount": -1}}, 422, "INVALID_AMOUNT", "settlement.amount"),
        ({"settlement": "CNY"}, 400, "INVALID_REQUEST", "settlement"),
        ({"auto_refund_on_expiry": "yes"}, 400, "INVALID_REQUEST", "auto_refund_on_expiry"),
        ({"out_trade_no": "T/1"}, 400, "INVALID_REQUEST", "out_trade_no"),
        ({"out_trade_no": "T" * 65}, 400, "INVALID_REQUEST", "out_trade_no"),
        ({"user_id": "u\x00"}, 400, "INVALID_REQUEST", "user_id"),
        ({"extra": 1}, 400, "INVALID_REQUEST", "extra"),
    ],
)
def test_malformed_payment_is_refused_naming_the_field(core, merchant, change, status, code, param):
    r = core.post(URL, payment_body(**change))
    assert r.status_code == status, r.content
    error = error_of(r)
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"].startswith(param)


def test_a_refunds_key_cannot_report_payments(api):
    r = api.post(URL, payment_body())
    assert r.status_code == 403
    assert error_of(r)["code"] == "FORBIDDEN"


def test_get_payment_with_either_scope_shows_refunded_and_refundable(api, merchant):
    p = f.payment(merchant, amount=10000, out_trade_no="T1001")
    f.refund(merchant, p, 3000)
    own_payments_key = Api(api_key_create(merchant=merchant, scope=ApiKey.Scope.PAYMENTS)[1])
    for client in (api, own_payments_key):
        r = client.get(f"{URL}/T1001")
        assert r.status_code == 200, r.content
        data = r.json()
        assert (data["amount"], data["refunded_amount"], data["refundable_amount"]) == (10000, 3000, 7000)
        assert data["parts"][0]["refunded_amount"] == 3000


def test_another_merchants_payment_is_404(api, other_merchant):
    f.payment(other_merchant, out_trade_no="T2002")
    r = api.get(f"{URL}/T2002")
    assert r.status_code == 404
    assert error_of(r)["code"] == "PAYMENT_NOT_FOUND"


@pytest.mark.parametrize("trade_no", ["NOPE", "%00", "x" * 300, "%F0%9F%92%B0"])
def test_unknown_or_malformed_out_trade_no_is_404(api, merchant, trade_no):
    r = api.get(f"{URL}/{trade_no}")
    assert r.status_code == 404
    assert error_of(r)["code"] == "PAYMENT_NOT_FOUND"
