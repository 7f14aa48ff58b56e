"""The review queue: oldest first, filters in the URL, keyset pages, four eyes, decisions in place."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from refunds import roles, screens
from refunds.models import Refund, RefundEvent
from tests import factories as f

from .conftest import flagged_refund, make_user

pytestmark = pytest.mark.django_db


def queue_ids(response) -> list[str]:
    return [str(row.refund.pk) for row in response.context["rows"]]


def test_lists_only_refunds_waiting_for_review_oldest_first(as_role, flagged_merchant):
    first = flagged_refund(flagged_merchant)
    second = flagged_refund(flagged_merchant)
    small = flagged_refund(flagged_merchant, amount=1_000)  # under the threshold: approved at once
    Refund.objects.filter(pk=first.pk).update(created_at=timezone.now() - datetime.timedelta(hours=5))

    response = as_role(roles.AGENT).get(reverse("review-queue"))

    assert small.status != Refund.Status.PENDING_REVIEW
    assert queue_ids(response) == [str(first.pk), str(second.pk)]
    body = response.content.decode()
    assert "above the merchant&#x27;s review threshold" in body  # the risk reason is shown
    assert "5 h ago" in body


def test_filters_live_in_the_url(as_role, flagged_merchant):
    other = f.merchant(funded=10_000_000, review_threshold=0)
    cheap = flagged_refund(flagged_merchant, amount=60_000)
    dear = flagged_refund(flagged_merchant, amount=90_000)
    by_cs = flagged_refund(flagged_merchant, amount=70_000, source=Refund.Source.CUSTOMER_SERVICE)
    elsewhere = flagged_refund(other, amount=5_000)
    Refund.objects.filter(pk=dear.pk).update(created_at=timezone.now() - datetime.timedelta(hours=30))
    client = as_role(roles.AGENT)
    url = reverse("review-queue")

    assert set(queue_ids(client.get(url))) == {str(r.pk) for r in (cheap, dear, by_cs, elsewhere)}
    assert set(queue_ids(client.get(url, {"merchant": other.code}))) == {str(elsewhere.pk)}
    assert set(queue_ids(client.get(url, {"source": "customer_service"}))) == {str(by_cs.pk)}
    assert set(queue_ids(client.get(url, {"amount_min": "650", "amount_max": "800.00"}))) == {str(by_cs.pk)}
    assert set(queue_ids(client.get(url, {"age": "24"}))) == {str(dear.pk)}
    assert set(queue_ids(client.get(url, {"flag": "review threshold", "merchant": flagged_merchant.code}))) == {
        str(r.pk) for r in (cheap, dear, by_cs)
    }
    assert queue_ids(client.get(url, {"flag": "stolen account"})) == []
    # the filters stay in the form, so the URL can be shared
    assert 'value="customer_service" selected' in client.get(url, {"source": "customer_service"}).content.decode()


def test_keyset_pagination_next_50(as_role, flagged_merchant):
    refunds = [flagged_refund(flagged_merchant) for _ in range(53)]
    client = as_role(roles.AGENT)

    page1 = client.get(reverse("review-queue"))
    assert len(page1.context["rows"]) == 50
    cursor = page1.context["next_cursor"]
    assert cursor and "Next 50" in page1.content.decode()
    page2 = client.get(reverse("review-queue"), {"after": cursor})

    ordered = sorted(refunds, key=lambda r: (r.created_at, r.pk.hex))
    assert queue_ids(page1) + queue_ids(page2) == [str(r.pk) for r in ordered]
    assert page2.context["next_cursor"] == ""


def test_keyset_page_does_not_count_the_table(as_role, flagged_merchant):
    flagged_refund(flagged_merchant)
    client = as_role(roles.AGENT)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("refund-list"))
        client.get(reverse("review-queue"))
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    # only the navigation's capped badges count, and they stop after 1000 rows
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_approve_with_reason_updates_the_row_in_place(as_role, flagged_merchant):
    refund = flagged_refund(flagged_merchant, direction=Refund.Direction.BALANCE)
    client = as_role(roles.AGENT, username="amy")

    response = client.post(
        reverse("review-decide"), {"action": "approve", "ids": [refund.pk], "reason": "customer called, verified"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="row-{refund.pk}"' in body and 'hx-swap-oob="true"' in body
    assert "Approved 1 refund." in body
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED  # a balance refund is paid as soon as it is approved
    event = refund.events.get(to_status=Refund.Status.APPROVED, leg=None)
    assert event.actor == "user:amy" and event.reason == "customer called, verified"


def test_reason_is_required(as_role, flagged_merchant):
    refund = flagged_refund(flagged_merchant)
    client = as_role(roles.AGENT)

    for action in ("approve", "reject"):
        response = client.post(reverse("review-decide"), {"action": action, "ids": [refund.pk], "reason": "  "},
                               HTTP_HX_REQUEST="true")
        assert "A reason is required." in response.content.decode()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PENDING_REVIEW


def test_reject_many_at_once(as_role, flagged_merchant):
    refunds = [flagged_refund(flagged_merchant) for _ in range(3)]
    client = as_role(roles.AGENT)

    response = client.post(reverse("review-decide"),
                           {"action": "reject", "ids": [r.pk for r in refunds], "reason": "order brushing"})

    assert response.status_code == 302
    assert set(Refund.objects.filter(pk__in=[r.pk for r in refunds]).values_list("status", flat=True)) == {
        Refund.Status.REJECTED}
    assert RefundEvent.objects.filter(to_status=Refund.Status.REJECTED, reason="order brushing").count() == 3


def test_a_refund_already_decided_is_reported_not_changed(as_role, flagged_merchant):
    refund = flagged_refund(flagged_merchant)
    client = as_role(roles.AGENT)
    client.post(reverse("review-decide"), {"action": "reject", "ids": [refund.pk], "reason": "duplicate"})

    response = client.post(reverse("review-decide"), {"action": "approve", "ids": [refund.pk], "reason": "late"},
                           HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert "1 could not be changed." in body and "only a refund pending review" in body
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REJECTED


def test_four_eyes_a_supervisor_cannot_approve_their_own_refund(client, flagged_merchant):
    supervisor = make_user(roles.SUPERVISOR, "sue")
    other = make_user(roles.SUPERVISOR, "sam")
    payment = f.payment(flagged_merchant, amount=100_000)
    refund = f.refund(flagged_merchant, payment, 60_000, user=supervisor, source=Refund.Source.CUSTOMER_SERVICE)
    assert refund.status == Refund.Status.PENDING_REVIEW

    client.force_login(supervisor)
    body = client.get(reverse("review-queue")).content.decode()
    assert "You created this refund: another supervisor must approve it." in body
    assert 'data-action="approve" disabled' in body
    response = client.post(reverse("review-decide"), {"action": "approve", "ids": [refund.pk], "reason": "ok"},
                           HTTP_HX_REQUEST="true")
    assert "another person must approve it" in response.content.decode()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PENDING_REVIEW

    client.force_login(other)
    assert 'data-action="approve" disabled' not in client.get(reverse("review-queue")).content.decode()
    client.post(reverse("review-decide"), {"action": "approve", "ids": [refund.pk], "reason": "second pair of eyes"})
    refund.refresh_from_db()
    assert refund.status != Refund.Status.PENDING_REVIEW


def test_rows_say_what_approval_will_do(as_role, flagged_merchant):
    refund = flagged_refund(flagged_merchant)
    row = screens.ReviewRow.build(refund, as_role(roles.AGENT).user)
    assert row.will_approve.startswith("Refund CNY 600.00 to WeChat Pay, arrives by ")
    assert "CNY 600.00 held from" in row.will_reject


def test_cursor_round_trip(flagged_merchant):
    refund = flagged_refund(flagged_merchant)
    at, pk = screens.decode_cursor(screens.encode_cursor(refund))
    assert at == refund.created_at and pk == refund.pk
    assert screens.decode_cursor("garbage") is None
