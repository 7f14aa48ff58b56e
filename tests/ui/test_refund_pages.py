"""The refund page, the refund list, the search box, time zones, languages and money."""

import pytest
from django.urls import reverse
from django.utils import translation

from merchants.models import LedgerTransaction
from refunds import roles, services
from refunds.models import Refund, RefundLeg
from refunds.templatetags.backoffice import money, status_chip
from tests import factories as f

from .conftest import flagged_refund

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchant(db):
    return f.merchant(funded=10_000_000)


def test_refund_page_shows_header_legs_timeline_payment_and_ledger(as_role, merchant):
    payment = f.payment(merchant, amount=20_000, out_trade_no="T-PAGE", user_id="u-42")
    first = f.refund(merchant, payment, 3_000, out_refund_no="R-PAGE-1", reason="size too small")
    second = f.refund(merchant, payment, 2_000, out_refund_no="R-PAGE-2")
    client = as_role(roles.FINANCE)

    response = client.get(reverse("refund-detail", args=[first.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "CNY 30.00" in body and merchant.name in body and "u-42" in body
    assert 'class="chip chip-approved" data-status="APPROVED">Approved<' in body
    assert "Original route" in body and "Arrives by" in body
    assert "WeChat Pay" in body and first.legs.get().submission_no in body
    # the whole payment: its parts and every refund of it
    assert "T-PAGE" in body and "R-PAGE-2" in body and str(second.pk) in body
    # the timeline, newest first, with actors and reasons
    events = response.context["page"].events
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    assert f"api:{merchant.code}" in body and "size too small" in body
    # ledger entries for finance
    assert LedgerTransaction.objects.filter(reference=f"refund:{first.pk}").exists()
    assert 'data-testid="ledger"' in body and "Refund hold" in body


def test_refund_list_filters_and_keyset_pages(as_role, merchant):
    payment = f.payment(merchant, amount=1_000_000)
    refunds = [f.refund(merchant, payment, 100) for _ in range(55)]
    other = f.merchant(funded=1_000_000)
    elsewhere = f.refund(other, f.payment(other, amount=5_000), 1_000, source=Refund.Source.USER)
    client = as_role(roles.AUDITOR)

    page1 = client.get(reverse("refund-list"))
    page2 = client.get(reverse("refund-list"), {"before": page1.context["next_cursor"]})
    shown = [r.pk for r in page1.context["rows"]] + [r.pk for r in page2.context["rows"]]
    assert len(page1.context["rows"]) == 50
    assert shown == [r.pk for r in sorted([*refunds, elsewhere], key=lambda r: (r.created_at, r.pk.hex), reverse=True)]
    assert page2.context["next_cursor"] == ""

    assert [r.pk for r in client.get(reverse("refund-list"), {"merchant": other.code}).context["rows"]] == [elsewhere.pk]
    assert [r.pk for r in client.get(reverse("refund-list"), {"source": "user"}).context["rows"]] == [elsewhere.pk]
    assert client.get(reverse("refund-list"), {"status": "FAILED"}).context["rows"] == []


@pytest.fixture
def searchable(merchant):
    payment = f.payment(merchant, amount=10_000, out_trade_no="T-SEARCH", user_id="u-search")
    one = f.refund(merchant, payment, 1_000, out_refund_no="R-SEARCH-1")
    two = f.refund(merchant, payment, 2_000, out_refund_no="R-SEARCH-2")
    leg = one.legs.get()
    RefundLeg.objects.filter(pk=leg.pk).update(channel_refund_id="WX-REFUND-777")
    return one, two, leg


@pytest.mark.parametrize("query", ["{one.pk}", "R-SEARCH-1", "WX-REFUND-777", "{leg.submission_no}"])
def test_search_goes_straight_to_a_single_refund(as_role, searchable, query):
    one, _two, leg = searchable
    response = as_role(roles.AGENT).get(reverse("search"), {"q": query.format(one=one, leg=leg)})
    assert response.status_code == 302
    assert response["Location"] == reverse("refund-detail", args=[one.pk])


@pytest.mark.parametrize("query", ["T-SEARCH", "u-search"])
def test_search_with_several_results_lists_them(as_role, searchable, query):
    one, two, _leg = searchable
    response = as_role(roles.AGENT).get(reverse("search"), {"q": query})
    assert response.status_code == 200
    assert {r.pk for r in response.context["found"].refunds} == {one.pk, two.pk}


def test_search_finds_a_payment_without_refunds(as_role, merchant):
    f.payment(merchant, amount=10_000, out_trade_no="T-LONELY")
    body = as_role(roles.AGENT).get(reverse("search"), {"q": "T-LONELY"}).content.decode()
    assert "Payments without refunds" in body and "T-LONELY" in body


def test_search_with_nothing_found_says_so(as_role, merchant):
    body = as_role(roles.AGENT).get(reverse("search"), {"q": "nope"}).content.decode()
    assert "Nothing found" in body


def test_times_in_the_viewers_time_zone_with_the_zone_shown(as_role, merchant):
    refund = f.refund(merchant, f.payment(merchant), 1_000)
    client = as_role(roles.AGENT)
    url = reverse("refund-detail", args=[refund.pk])

    assert "UTC+8" in client.get(url).content.decode()  # settings.TIME_ZONE, Asia/Shanghai
    client.post(reverse("preferences"), {"timezone": "Europe/London"})
    body = client.get(url).content.decode()
    assert "UTC+0" in body and "Europe/London" in body  # the zone also at the top right
    client.post(reverse("preferences"), {"timezone": "Not/AZone"})
    assert "Europe/London" in client.get(url).content.decode()


def test_language_switch_sticks_and_translates(as_role, merchant):
    refund = flagged_refund(f.merchant(funded=1_000_000, review_threshold=0), amount=123_456)
    client = as_role(roles.AGENT)

    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": reverse("review-queue")})
    assert response.status_code == 302
    body = client.get(reverse("review-queue")).content.decode()

    assert "审核队列" in body  # "Review queue"
    assert "¥1,234.56" in body
    assert "待审核" in body  # the status chip
    assert refund.out_refund_no in body
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "Review queue" in client.get(reverse("review-queue")).content.decode()


def test_money_filter():
    with translation.override("en"):
        assert money(123456, "CNY") == "CNY 1,234.56"
        assert money(500, "JPY") == "JPY 500"
        assert money(-1500, "USD") == "USD -15.00"
    with translation.override("zh-hans"):
        assert money(123456, "CNY") == "¥1,234.56"
        assert money(123456, "USD") == "USD 1,234.56"


def test_status_chip_has_the_word_and_the_colour():
    translation.activate("en")
    assert str(status_chip("MANUAL_PAYOUT")) == '<span class="chip chip-manual" data-status="MANUAL_PAYOUT">Manual payout</span>'
    assert 'chip-closed' in str(status_chip("REJECTED")) and "Rejected" in str(status_chip("REJECTED"))


def test_login_and_logout_pages(client, merchant):
    from .conftest import make_user

    make_user(roles.AGENT, "ann", password="secret-pw")
    page = client.get(reverse("login"))
    assert page.status_code == 200 and "backoffice.css" in page.content.decode()
    response = client.post(reverse("login"), {"username": "ann", "password": "secret-pw"})
    assert response.status_code == 302
    assert client.get(response["Location"], follow=True).redirect_chain[-1][0] == reverse("review-queue")
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")


def test_a_channel_refund_completed_by_the_leg_service_shows_succeeded(as_role, merchant):
    refund = f.refund(merchant, f.payment(merchant), 1_000)
    leg = refund.legs.get()
    services.leg_submit(leg_id=leg.pk, by="task:test")
    services.leg_record_success(leg_id=leg.pk, by="channel:wechat", channel_refund_id="WX-1")
    body = as_role(roles.AGENT).get(reverse("refund-detail", args=[refund.pk])).content.decode()
    assert 'data-status="SUCCEEDED">Succeeded<' in body and "WX-1" in body
