"""Lists that stay fast on big tables (issue "screens", item 8; bench/list_screens.py measures
them on a million refunds): keyset pages that break ties by id, filters by merchant id, capped
admin counts and pages, index-only sorting, searches through a union of exact lookups."""

import datetime

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from merchants.admin import EstimatedCountPaginator, distinct_values
from refunds import roles, screens
from refunds.models import Payment, Refund
from tests import factories as f
from tests.ui import casework as cw

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchant(db):
    f.channel()
    return f.merchant(funded=10_000_000)


def _same_instant(refunds) -> None:
    Refund.objects.filter(pk__in=[r.pk for r in refunds]).update(created_at=timezone.now())


def test_refund_list_keyset_pages_break_ties_by_id(merchant):
    payment = f.payment(merchant, amount=100_000)
    refunds = [f.refund(merchant, payment, 100) for _ in range(7)]
    _same_instant(refunds)  # one created_at: only the id orders them

    seen, cursor = [], ""
    for _ in range(5):
        rows, cursor = screens.refund_list(screens.ListFilters(before=cursor), limit=3)
        seen += [r.pk for r in rows]
        if not cursor:
            break
    assert seen == sorted((r.pk for r in refunds), key=lambda pk: pk.hex, reverse=True)


def test_review_queue_keyset_pages_break_ties_by_id(merchant):
    merchant.review_threshold = 50
    merchant.save()
    payment = f.payment(merchant, amount=100_000)
    refunds = [f.refund(merchant, payment, 100) for _ in range(5)]
    assert {r.status for r in refunds} == {Refund.Status.PENDING_REVIEW}
    _same_instant(refunds)

    seen, cursor = [], ""
    for _ in range(5):
        rows, cursor = screens.review_queue(screens.QueueFilters(after=cursor), limit=2)
        seen += [r.pk for r in rows]
        if not cursor:
            break
    assert seen == sorted((r.pk for r in refunds), key=lambda pk: pk.hex)


def test_lists_filtered_by_an_unknown_merchant_are_empty(as_role, merchant):
    f.refund(merchant, f.payment(merchant, amount=10_000), 100)
    client = as_role(roles.ADMIN)
    assert client.get(reverse("refund-list"), {"merchant": "NO-SUCH"}).context["rows"] == []
    assert client.get(reverse("refund-list"), {"merchant": merchant.code}).context["rows"]


def test_payouts_tabs_filter_by_merchant(as_role, merchant):
    _m, _r, failed = cw.failed_channel_leg(merchant)
    _m, _r, manual = cw.manual_leg_from_the_start(merchant)
    other = f.merchant(funded=1_000_000)
    _o, _r, failed_elsewhere = cw.failed_channel_leg(other)
    client = as_role(roles.ADMIN)

    def legs(state, code):
        return [leg.pk for leg in client.get(reverse("payouts"), {"state": state, "merchant": code}).context["page"].rows]

    assert legs("failed", merchant.code) == [failed.pk]
    assert legs("failed", other.code) == [failed_elsewhere.pk]
    assert legs("card", merchant.code) == [manual.pk]
    assert legs("card", other.code) == []


# ---------------------------------------------------------------------------------------------
# The admin


class TwoPages(EstimatedCountPaginator):
    MAX_PAGES = 2


def test_paginator_counts_only_up_to_its_pages_and_offers_no_deeper_page(merchant):
    payment = f.payment(merchant, amount=100_000)
    for _ in range(7):
        f.refund(merchant, payment, 100)
    filtered = Refund.objects.filter(merchant=merchant).order_by("-created_at", "-pk")

    paginator = TwoPages(filtered, 2)
    assert paginator.count == 5  # counted up to 2 pages of 2, plus one: "more than 4"
    assert paginator.count_label == "more than 4"
    assert paginator.num_pages == 2 and paginator.pages_capped
    assert paginator.page(99).number == 2  # a deeper page shows the last offered one

    exact = EstimatedCountPaginator(filtered, 2)
    assert (exact.count, exact.count_label, exact.num_pages) == (7, "", 4)


def test_admin_changelist_says_when_its_count_is_a_floor(merchant, as_role, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "MAX_PAGES", 1)
    monkeypatch.setattr(admin.site._registry[Refund], "list_per_page", 2)
    payment = f.payment(merchant, amount=100_000)
    for _ in range(4):
        f.refund(merchant, payment, 100)

    response = as_role(roles.ADMIN).get(reverse("admin:refunds_refund_changelist"), {"source__exact": "merchant",
                                                                                      "p": "7"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "more than 2 refunds" in body and "filter or search" in body
    assert len(response.context["cl"].result_list) == 2


def test_admin_sorts_big_tables_only_by_indexed_columns(merchant, as_role):
    payment = f.payment(merchant, amount=100_000)
    small, big = f.refund(merchant, payment, 100), f.refund(merchant, payment, 900)
    Refund.objects.filter(pk=small.pk).update(created_at=timezone.now() - datetime.timedelta(hours=1))
    model_admin = admin.site._registry[Refund]
    amount_column = list(model_admin.list_display).index("amount_display")

    response = as_role(roles.ADMIN).get(reverse("admin:refunds_refund_changelist"), {"o": str(amount_column)})
    cl = response.context["cl"]
    assert "amount" not in [str(o) for o in cl.get_ordering(response.wsgi_request, cl.root_queryset)]
    assert [r.pk for r in cl.result_list] == [big.pk, small.pk]  # still newest first
    body = response.content.decode()
    assert 'class="column-amount_display"' in body and 'class="sortable column-created_at' in body  # no sort link


def test_admin_search_matches_each_field_exactly(merchant, as_role):
    payment = f.payment(merchant, amount=100_000, user_id="user-42")
    r1 = f.refund(merchant, payment, 100, out_refund_no="R-SEARCH-1")
    other = f.payment(merchant, amount=100_000, user_id="user-43")
    r2 = f.refund(merchant, other, 100)
    client = as_role(roles.ADMIN)
    url = reverse("admin:refunds_refund_changelist")

    def found(q):
        return {r.pk for r in client.get(url, {"q": q}).context["cl"].result_list}

    assert found("R-SEARCH-1") == {r1.pk}
    assert found(payment.out_trade_no) == {r1.pk}
    assert found("user-43") == {r2.pk}
    assert found(str(r2.pk)) == {r2.pk}
    assert found("R-SEARCH") == set()


def test_payment_currency_filter_lists_the_currencies_in_use(merchant, as_role):
    f.payment(merchant, amount=1_000)
    f.payment(merchant, amount=1_000, currency="USD")
    f.payment(merchant, amount=1_000, currency="USD")
    assert distinct_values(Payment, "currency") == ["CNY", "USD"]

    response = as_role(roles.ADMIN).get(reverse("admin:refunds_payment_changelist"), {"currency": "USD"})
    assert {p.currency for p in response.context["cl"].result_list} == {"USD"}
    assert "?currency=CNY" in response.content.decode()
