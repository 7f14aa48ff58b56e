import uuid

import pytest

from merchants.models import ApiKey, Merchant
from merchants.services import api_key_create
from refunds.models import Payment, Refund
from tests import factories as f

from .conftest import Api, error_of, refund_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/refunds"
REFUND_KEYS = {
    "id", "out_refund_no", "out_trade_no", "amount", "currency", "direction", "source", "reason", "status",
    "failure_reason", "estimated_arrival", "breakdown", "legs", "created_at", "completed_at",
}


@pytest.fixture
def payment(merchant):
    return f.payment(merchant, amount=10000, out_trade_no="T1001")


def test_refund_is_created_201_with_the_refund_object(api, payment):
    r = api.post(URL, refund_body(amount=3000, notify_url="http://127.0.0.1:9000/hook"))
    assert r.status_code == 201, r.content
    data = r.json()
    assert set(data) == REFUND_KEYS
    assert (data["out_refund_no"], data["out_trade_no"], data["amount"], data["currency"]) == ("R1", "T1001", 3000, "CNY")
    assert data["status"] in Refund.Status.values
    assert data["breakdown"] == {"channel": 3000}
    assert data["legs"][0]["route"] == "wechat"
    refund = Refund.objects.get(pk=data["id"])
    assert refund.created_by == "api:M001"
    assert refund.notify_url == "http://127.0.0.1:9000/hook"


def test_same_request_again_is_200_with_the_same_refund(api, payment):
    first = api.post(URL, refund_body())
    again = api.post(URL, refund_body())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    payment.refresh_from_db()
    assert payment.refunded_amount == 3000


def test_same_out_refund_no_with_another_body_is_409(api, payment):
    api.post(URL, refund_body(amount=3000))
    r = api.post(URL, refund_body(amount=3001))
    assert r.status_code == 409
    assert error_of(r)["code"] == "OUT_REFUND_NO_CONFLICT"


def test_refund_of_unknown_payment_is_404(api, payment):
    r = api.post(URL, refund_body(out_trade_no="T404"))
    assert r.status_code == 404
    assert error_of(r)["code"] == "PAYMENT_NOT_FOUND"


def test_refund_of_another_merchants_payment_is_404(api, other_merchant):
    f.payment(other_merchant, out_trade_no="T2002")
    r = api.post(URL, refund_body(out_trade_no="T2002"))
    assert r.status_code == 404
    assert error_of(r)["code"] == "PAYMENT_NOT_FOUND"


def test_second_refund_past_paid_amount_is_refused(api, payment):
    assert api.post(URL, refund_body(out_refund_no="R1", amount=7000)).status_code == 201
    r = api.post(URL, refund_body(out_refund_no="R2", amount=3001))
    assert r.status_code == 422
    assert error_of(r)["code"] == "AMOUNT_EXCEEDS_REFUNDABLE"


def test_refund_the_source_account_cannot_cover_is_422_insufficient_balance(db):
    m = f.merchant("M009", refund_source=Merchant.RefundSource.CASH)
    f.payment(m, amount=10000, out_trade_no="T9")
    client = Api(api_key_create(merchant=m, scope=ApiKey.Scope.REFUNDS)[1])
    r = client.post(URL, refund_body(out_trade_no="T9"))
    assert r.status_code == 422
    assert error_of(r)["code"] == "INSUFFICIENT_BALANCE"


def test_refund_without_an_fx_rate_is_422_fx_rate_unavailable(api, merchant):
    f.payment(merchant, amount=10000, out_trade_no="T-USD", currency="USD", settlement_currency="CNY",
              settlement_amount=72000)
    r = api.post(URL, refund_body(out_trade_no="T-USD"))
    assert r.status_code == 422
    assert error_of(r)["code"] == "FX_RATE_UNAVAILABLE"


@pytest.mark.parametrize(
    ("change", "status", "code", "param"),
    [
        ({"amount": 0}, 422, "INVALID_AMOUNT", "amount"),
        ({"amount": -3000}, 422, "INVALID_AMOUNT", "amount"),
        ({"amount": 10**30}, 422, "INVALID_AMOUNT", "amount"),
        ({"amount": "3000"}, 400, "INVALID_REQUEST", "amount"),
        ({"amount": True}, 400, "INVALID_REQUEST", "amount"),
        ({"amount": None}, 400, "INVALID_REQUEST", "amount"),
        ({"direction": "sideways"}, 400, "INVALID_REQUEST", "direction"),
        ({"source": 1}, 400, "INVALID_REQUEST", "source"),
        ({"out_refund_no": ""}, 400, "INVALID_REQUEST", "out_refund_no"),
        ({"out_refund_no": "R 1"}, 400, "INVALID_REQUEST", "out_refund_no"),
        ({"out_trade_no": 1001}, 400, "INVALID_REQUEST", "out_trade_no"),
        ({"reason": "x" * 256}, 400, "INVALID_REQUEST", "reason"),
        ({"reason": "bad\x00byte"}, 400, "INVALID_REQUEST", "reason"),
        ({"reason": "\ud800"}, 400, "INVALID_REQUEST", "reason"),
        ({"notify_url": "ftp://example.com/x"}, 400, "INVALID_REQUEST", "notify_url"),
        ({"notify_url": "not a url"}, 400, "INVALID_REQUEST", "notify_url"),
        ({"amonut": 3000}, 400, "INVALID_REQUEST", "amonut"),
    ],
)
def test_malformed_refund_is_refused_naming_the_field(api, payment, change, status, code, param):
    r = api.post(URL, refund_body(**change))
    assert r.status_code == status, r.content
    error = error_of(r)
    assert (error["code"], error["param"]) == (code, param)
    assert not Refund.objects.exists()


def test_missing_field_is_400_naming_it(api, payment):
    body = refund_body()
    del body["out_refund_no"]
    r = api.post(URL, body)
    assert r.status_code == 400
    assert error_of(r)["param"] == "out_refund_no"


def test_get_refund_by_id(api, payment):
    created = api.post(URL, refund_body()).json()
    r = api.get(f"{URL}/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert api.get(f"{URL}/{created['id'].upper()}").json()["id"] == created["id"]


def test_another_merchants_refund_is_404_never_403(api, other_merchant):
    p = f.payment(other_merchant, out_trade_no="T2002")
    theirs = f.refund(other_merchant, p, 1000, out_refund_no="R1")
    r = api.get(f"{URL}/{theirs.pk}")
    assert r.status_code == 404
    assert error_of(r)["code"] == "REFUND_NOT_FOUND"
    assert api.get(URL, {"out_refund_no": "R1"}).status_code == 404
    assert api.get(URL, {"out_trade_no": "T2002"}).json()["data"] == []
    assert api.get(URL).json()["data"] == []


@pytest.mark.parametrize("refund_id", [str(uuid.uuid4()), "not-a-uuid", "%00", "1" * 500, "12345678-1234-1234-1234-1234567890ZZ"])
def test_unknown_or_malformed_refund_id_is_404(api, payment, refund_id):
    r = api.get(f"{URL}/{refund_id}")
    assert r.status_code == 404
    assert error_of(r)["code"] == "REFUND_NOT_FOUND"


def test_lookup_by_out_refund_no_answers_the_refund_object(api, payment):
    created = api.post(URL, refund_body(out_refund_no="R1")).json()
    api.post(URL, refund_body(out_refund_no="R2", amount=100))
    r = api.get(URL, {"out_refund_no": "R1"})
    assert r.status_code == 200
    assert r.json() == created
    assert api.get(URL, {"out_refund_no": "R1", "out_trade_no": "T1001"}).json()["id"] == created["id"]
    missing = api.get(URL, {"out_refund_no": "R404"})
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "REFUND_NOT_FOUND"
    assert api.get(URL, {"out_refund_no": "R1", "out_trade_no": "T9999"}).status_code == 404


def test_list_by_out_trade_no_has_only_that_payments_refunds(api, merchant, payment):
    f.payment(merchant, amount=5000, out_trade_no="T1002")
    api.post(URL, refund_body(out_refund_no="R1", amount=100))
    api.post(URL, refund_body(out_refund_no="R2", amount=200))
    api.post(URL, refund_body(out_trade_no="T1002", out_refund_no="R3", amount=300))
    r = api.get(URL, {"out_trade_no": "T1001"})
    assert r.status_code == 200
    body = r.json()
    assert [x["out_refund_no"] for x in body["data"]] == ["R2", "R1"]
    assert (body["has_more"], body["next_cursor"]) == (False, None)
    assert api.get(URL, {"out_trade_no": "T404"}).json() == {"data": [], "has_more": False, "next_cursor": None}


def test_list_pages_newest_first_with_a_cursor(api, merchant, payment):
    for i in range(5):
        assert api.post(URL, refund_body(out_refund_no=f"R{i}", amount=100)).status_code == 201
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"starting_after": cursor} if cursor else {})
        body = api.get(URL, params).json()
        pages += 1
        seen += [x["out_refund_no"] for x in body["data"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        assert body["next_cursor"] == body["data"][-1]["id"]
        cursor = body["next_cursor"]
    assert pages == 3
    assert seen == ["R4", "R3", "R2", "R1", "R0"]
    assert len(api.get(URL).json()["data"]) == 5


def test_refunds_made_in_the_same_instant_page_without_gaps(api, merchant, payment):
    for i in range(4):
        api.post(URL, refund_body(out_refund_no=f"R{i}", amount=100))
    Refund.objects.update(created_at=Refund.objects.first().created_at)
    first = api.get(URL, {"limit": 2}).json()
    second = api.get(URL, {"limit": 2, "starting_after": first["next_cursor"]}).json()
    ids = [x["id"] for x in first["data"] + second["data"]]
    assert len(set(ids)) == 4 and second["has_more"] is False


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "2.0"}, "limit"),
     ({"starting_after": "nope"}, "starting_after"), ({"out_trade_no": "T\x00"}, "out_trade_no"),
     ({"out_refund_no": "x" * 65}, "out_refund_no")],
)
def test_malformed_list_query_is_400_naming_the_parameter(api, payment, params, param):
    r = api.get(URL, params)
    assert r.status_code == 400
    assert error_of(r)["param"] == param


def test_unknown_cursor_is_404(api, payment):
    r = api.get(URL, {"starting_after": str(uuid.uuid4())})
    assert r.status_code == 404
    assert error_of(r)["code"] == "REFUND_NOT_FOUND"


def test_a_payments_key_cannot_touch_refunds(core, payment):
    for r in (core.post(URL, refund_body()), core.get(URL), core.get(f"{URL}/{uuid.uuid4()}")):
        assert r.status_code == 403
        assert error_of(r)["code"] == "FORBIDDEN"
    assert Payment.objects.get(out_trade_no="T1001").refunded_amount == 0
