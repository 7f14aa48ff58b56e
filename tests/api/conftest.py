import json

import pytest
from django.test import Client

from merchants.models import ApiKey
from merchants.services import api_key_create
from tests import factories as f


class Api:
    """A Django test client that speaks the API: JSON bodies and a bearer key."""

    def __init__(self, raw_key: str | None):
        self.client = Client()
        self.raw_key = raw_key

    def _headers(self, headers):
        out = {"Authorization": f"Bearer {self.raw_key}"} if self.raw_key else {}
        out.update(headers or {})
        return out

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path, body=None, *, raw: str | bytes | None = None, content_type="application/json", headers=None):
        data = raw if raw is not None else json.dumps(body)
        # generic(): sends the bytes as given, whatever charset the content type claims.
        return self.client.generic("POST", path, data, content_type=content_type, headers=self._headers(headers))

    def request(self, method, path, headers=None):
        return getattr(self.client, method.lower())(path, headers=self._headers(headers))


@pytest.fixture
def merchant(db):
    return f.merchant("M001")


@pytest.fixture
def other_merchant(db):
    return f.merchant("M002")


@pytest.fixture
def refunds_key(merchant) -> str:
    return api_key_create(merchant=merchant, scope=ApiKey.Scope.REFUNDS)[1]


@pytest.fixture
def payments_key(db) -> str:
    core = f.merchant("CORE", name="Payment core")
    return api_key_create(merchant=core, scope=ApiKey.Scope.PAYMENTS)[1]


@pytest.fixture
def api(refunds_key) -> Api:
    """The merchant M001 with a `refunds` key."""
    return Api(refunds_key)


@pytest.fixture
def core(payments_key) -> Api:
    """The payment core with a `payments` key."""
    return Api(payments_key)


@pytest.fixture
def anonymous() -> Api:
    return Api(None)


def payment_body(merchant="M001", out_trade_no="T1001", amount=10000, **overrides) -> dict:
    body = {
        "merchant": merchant, "out_trade_no": out_trade_no, "amount": amount, "currency": "CNY",
        "user_id": "u-42", "paid_at": "2026-11-20T10:00:00+08:00",
        "parts": [{"kind": "channel", "channel": "wechat", "amount": amount, "channel_txn_id": "42000001"}],
    }
    body.update(overrides)
    return body


def refund_body(out_trade_no="T1001", out_refund_no="R1", amount=3000, **overrides) -> dict:
    body = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "amount": amount,
            "reason": "item out of stock", "direction": "original", "source": "merchant"}
    body.update(overrides)
    return body


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return body["error"]
