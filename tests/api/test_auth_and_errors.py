import pytest
from django.utils import timezone

from merchants.models import ApiKey

from .conftest import Api, error_of, refund_body

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("post", "/api/v1/payments"),
    ("get", "/api/v1/payments/T1001"),
    ("post", "/api/v1/refunds"),
    ("get", "/api/v1/refunds"),
    ("get", "/api/v1/refunds/0b8f5a52-6a55-4f43-9a2e-0f2d1d6f3b11"),
]


def _call(client: Api, method, path):
    return client.post(path, {}) if method == "post" else client.get(path)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_key_is_401_with_www_authenticate(anonymous, method, path):
    r = _call(anonymous, method, path)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert error_of(r)["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "header", ["Bearer rk_live_not-a-key", "Bearer", "Basic dXNlcjpwYXNz", "rk_live_x", "Bearer " + "x" * 5000]
)
def test_unknown_or_malformed_key_is_401(db, header):
    r = Api(None).get("/api/v1/refunds", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert error_of(r)["code"] == "UNAUTHENTICATED"


def test_revoked_key_is_401(api, refunds_key):
    assert api.get("/api/v1/refunds").status_code == 200
    ApiKey.objects.filter(key_hash=ApiKey.hash_key(refunds_key)).update(revoked_at=timezone.now())
    r = api.get("/api/v1/refunds")
    assert r.status_code == 401
    assert "revoked" in error_of(r)["message"]


def test_keys_are_stored_hashed(refunds_key):
    key = ApiKey.objects.get()
    assert key.key_hash == ApiKey.hash_key(refunds_key)
    assert refunds_key not in (key.key_hash, key.prefix)


def test_wrong_scope_is_403(api, core):
    r = core.get("/api/v1/refunds")
    assert r.status_code == 403
    assert error_of(r)["code"] == "FORBIDDEN"
    assert "refunds" in error_of(r)["message"]
    r = api.post("/api/v1/payments", {})
    assert r.status_code == 403


@pytest.mark.parametrize(
    "raw", ['{"out_trade_no": ', "not json", "[]", '"string"', "1", "null", '{"amount": NaN}', "1" * 5000, b"\xff\xfe"]
)
def test_body_that_is_not_a_json_object_is_400(api, raw):
    r = api.post("/api/v1/refunds", raw=raw)
    assert r.status_code == 400
    assert error_of(r)["code"] == "INVALID_REQUEST"


def test_nested_errors_name_the_field_path(core):
    r = core.post("/api/v1/payments", {
        "merchant": "M001", "out_trade_no": "T1", "amount": 100, "user_id": "u", "paid_at": "2026-11-20T10:00:00Z",
        "parts": [{"kind": "balance", "amount": 50}, {"kind": "balance", "amount": "50"}],
    })
    assert r.status_code == 400
    assert error_of(r)["param"] == "parts[1].amount"
    assert error_of(r)["message"].startswith("parts[1].amount: ")


def test_wrong_content_type_is_415(api):
    r = api.post("/api/v1/refunds", raw="amount=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415
    assert error_of(r)["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(("method", "path"), [
    ("delete", "/api/v1/refunds"), ("put", "/api/v1/refunds"), ("patch", "/api/v1/payments"),
    ("options", "/api/v1/refunds"), ("get", "/api/v1/payments"), ("post", "/api/v1/payments/T1001"),
    ("delete", "/api/v1/refunds/0b8f5a52-6a55-4f43-9a2e-0f2d1d6f3b11"),
])
def test_unsupported_method_is_405_even_without_a_key(api, anonymous, method, path):
    for client in (api, anonymous):
        r = client.request(method, path)
        assert r.status_code == 405
        assert error_of(r)["code"] == "METHOD_NOT_ALLOWED"
        assert r.headers["Allow"]


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/nope", "/api/v1/refunds/", "/api/v1/payments/a/b"])
def test_unknown_api_path_is_a_json_404(api, path):
    r = api.get(path)
    assert r.status_code == 404
    assert error_of(r)["code"] == "NOT_FOUND"


def test_answers_json_whatever_accept_says(api):
    r = api.get("/api/v1/refunds", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"


def test_channel_notify_route_is_still_served(db):
    r = Api(None).post("/api/v1/channels/nope/notify", {})
    assert r.status_code == 404
    assert error_of(r)["code"] == "CHANNEL_NOT_FOUND"


def test_error_body_is_the_contract_shape(api, merchant):
    r = api.post("/api/v1/refunds", refund_body(out_trade_no="T404"))
    assert r.json() == {"error": {"code": "PAYMENT_NOT_FOUND", "message": "no payment T404 for merchant M001"}}


@pytest.mark.parametrize(("method", "path", "param"), [
    ("get", "/api/v1/refunds?out_refund=R1", "out_refund"),
    ("get", "/api/v1/payments/T1001?expand=parts", "expand"),
    ("post", "/api/v1/refunds?amount=1", "amount"),
])
def test_unknown_query_parameter_is_400_naming_it(api, method, path, param):
    r = _call(api, method, path)
    assert r.status_code == 400
    assert error_of(r)["param"] == param


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ("[" * 100_000 + "]" * 100_000, "application/json"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "application/json"),
        ("\ufeff{}", "application/json"),
        ('{"amount": 1}', "application/json; charset=nonsense"),
        ('{"amount": 1}', "application/json; charset=utf-16"),
        ("", "application/json"),
    ],
)
def test_no_body_however_malformed_gets_a_5xx(api, raw, content_type):
    r = api.post("/api/v1/refunds", raw=raw, content_type=content_type)
    assert 400 <= r.status_code < 500
    assert error_of(r)["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("query", ["limit=", "limit=%00", "limit=99999999999999999999", "starting_after=%FF", "=1", "limit=1&limit=2"])
def test_no_query_however_malformed_gets_a_5xx(api, query):
    r = api.get(f"/api/v1/refunds?{query}")
    assert r.status_code in (200, 400), r.content
    if r.status_code == 400:
        assert error_of(r)["code"] == "INVALID_REQUEST"
