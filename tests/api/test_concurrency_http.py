"""Real HTTP against a live server, many requests at once: the payment's row lock holds."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from merchants.models import ApiKey
from merchants.services import api_key_create
from refunds.models import Payment, Refund
from tests import factories as f

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _post_all(url: str, key: str, bodies: list[dict]) -> list[requests.Response]:
    def post(body):
        return requests.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_parallel_partial_refunds_over_http_never_sum_past_paid(live_server):
    m = f.merchant("MRACE")
    payment = f.payment(m, amount=10000, out_trade_no="T-RACE")
    key = api_key_create(merchant=m, scope=ApiKey.Scope.REFUNDS)[1]
    bodies = [{"out_trade_no": "T-RACE", "out_refund_no": f"R{i:02d}", "amount": 700} for i in range(20)]

    responses = _post_all(f"{live_server.url}/api/v1/refunds", key, bodies)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 14, 422: 6}, [r.text for r in responses if r.status_code not in (201, 422)]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 422} == {"AMOUNT_EXCEEDS_REFUNDABLE"}
    payment.refresh_from_db()
    assert payment.refunded_amount == 9800
    assert sum(Refund.objects.filter(payment=payment).values_list("amount", flat=True)) == 9800


def test_parallel_replays_of_one_refund_make_one_refund(live_server):
    m = f.merchant("MREPLAY")
    f.payment(m, amount=10000, out_trade_no="T-REPLAY")
    key = api_key_create(merchant=m, scope=ApiKey.Scope.REFUNDS)[1]
    body = {"out_trade_no": "T-REPLAY", "out_refund_no": "R1", "amount": 6000}

    responses = _post_all(f"{live_server.url}/api/v1/refunds", key, [body] * 10)

    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Payment.objects.get(out_trade_no="T-REPLAY").refunded_amount == 6000


def test_rate_limit_holds_under_parallel_requests(live_server, settings, monkeypatch):
    # Each request runs on its own database connection, as in separate gunicorn workers: the
    # counter is one row updated conditionally, so exactly the limit gets through.
    settings.API_RATE_LIMIT = 10
    monkeypatch.setattr("refunds.api.throttling.time.time", lambda: 1_800_000_030.0)
    m = f.merchant("MLIMIT")
    key = api_key_create(merchant=m, scope=ApiKey.Scope.REFUNDS)[1]

    def get(_):
        return requests.get(f"{live_server.url}/api/v1/refunds", headers={"Authorization": f"Bearer {key}"}, timeout=60)

    with ThreadPoolExecutor(max_workers=30) as pool:
        responses = list(pool.map(get, range(30)))

    assert Counter(r.status_code for r in responses) == {200: 10, 429: 20}
    assert {r.headers["Retry-After"] for r in responses if r.status_code == 429} == {"30"}
