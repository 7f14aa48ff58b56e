"""The embedded default (SQLite) serves a few people at once: concurrent requests queue for the
database, they never fail with "database is locked". Runs on PostgreSQL too."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from merchants.models import ApiKey
from merchants.services import api_key_create
from refunds.models import Payment
from tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


def test_parallel_writes_and_reads_queue_and_all_get_an_answer(live_server):
    m = f.merchant("MQUEUE")
    payments = [f.payment(m, amount=10000, out_trade_no=f"T-Q{i}") for i in range(4)]
    key = api_key_create(merchant=m, scope=ApiKey.Scope.REFUNDS)[1]
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{live_server.url}/api/v1/refunds"

    def work(i):
        if i % 3 == 2:
            return requests.get(f"{url}?out_trade_no=T-Q{i % 4}", headers=headers, timeout=60)
        body = {"out_trade_no": f"T-Q{i % 4}", "out_refund_no": f"R{i:02d}", "amount": 1500}
        return requests.post(url, json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(work, range(24)))

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 201}, [r.text for r in responses if r.status_code >= 300]
    assert statuses[201] == 16  # 4 refunds of 1500 on each of the 4 payments
    for p in payments:
        assert Payment.objects.get(pk=p.pk).refunded_amount == 6000
