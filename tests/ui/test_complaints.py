import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from merchants.models import Account
from refunds import complaints as complaint_services
from refunds.models import Complaint, ComplaintEvent, ComplaintRefund, Refund, RefundEvent
from tests import factories as f
from tests.ui import casework as cw

pytestmark = pytest.mark.django_db


def _open_from_refund(client, refund, **overrides):
    data = {
        "refund": str(refund.pk), "customer_contact": "+86 138 0000 0000", "category": "not_received",
        "description": "The refund has not arrived after a week.", **overrides,
    }
    return client.post(reverse("complaint-new"), data)


def _notes_on(refund) -> list[str]:
    return list(refund.events.filter(kind=RefundEvent.Kind.NOTE).order_by("id").values_list("reason", flat=True))


def test_complaint_lifecycle_from_a_refund_is_kept_on_the_complaint_and_the_refund_timeline(client):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    refund = f.refund(m, p, 3000)
    agent, colleague = cw.agent("agent1"), cw.agent("agent2")
    client.force_login(agent)

    page = client.get(reverse("complaint-new"), {"refund": refund.pk})
    assert page.status_code == 200 and refund.out_refund_no in page.content.decode()

    response = _open_from_refund(client, refund)
    complaint = Complaint.objects.get()
    assert response.status_code == 302 and response.url == reverse("complaint-detail", args=[complaint.pk])
    assert (complaint.status, complaint.payment_id, complaint.refund_id, complaint.opened_by) == ("open", p.pk, refund.pk, agent)

    detail = client.get(response.url).content.decode()
    assert "The refund has not arrived after a week." in detail and "Start refund" in detail

    assert client.post(reverse("complaint-assign", args=[complaint.pk]), {"assignee": colleague.pk}).status_code == 302
    complaint = Complaint.objects.get(pk=complaint.pk)
    assert (complaint.status, complaint.assignee) == ("assigned", colleague)

    # A note in place: htmx gets only the refreshed notes section back.
    note = client.post(
        reverse("complaint-note", args=[complaint.pk]), {"body": "Called the customer back."}, HTTP_HX_REQUEST="true"
    )
    body = note.content.decode()
    assert note.status_code == 200 and 'id="complaint-events"' in body and "<html" not in body
    assert "Called the customer back." in body

    due = timezone.localtime(timezone.now() + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.post(reverse("complaint-due", args=[complaint.pk]), {"due_at": due}).status_code == 302
    complaint = Complaint.objects.get(pk=complaint.pk)
    assert timezone.localtime(complaint.due_at).strftime("%Y-%m-%dT%H:%M") == due

    # Resolving and closing ask for the outcome.
    refused = client.post(reverse("complaint-resolve", args=[complaint.pk]), {"outcome": ""})
    assert refused.status_code == 400
    assert client.post(reverse("complaint-resolve", args=[complaint.pk]), {"outcome": "Told the ETA."}).status_code == 302
    complaint = Complaint.objects.get(pk=complaint.pk)
    assert complaint.status == "resolved" and complaint.finished_at is not None
    assert client.post(reverse("complaint-close", args=[complaint.pk]), {"outcome": "Customer satisfied."}).status_code == 302
    complaint = Complaint.objects.get(pk=complaint.pk)
    assert (complaint.status, complaint.outcome) == ("closed", "Customer satisfied.")

    # Closed is final.
    again = client.post(reverse("complaint-note", args=[complaint.pk]), {"body": "late"})
    assert again.status_code == 400 and "closed" in again.content.decode()

    kinds = list(complaint.events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["opened", "assigned", "note", "due_set", "resolved", "closed"]
    assert all(e.actor == "user:agent1" for e in complaint.events.all())
    notes = _notes_on(refund)
    assert len(notes) == 6 and all(n.startswith(f"complaint #{complaint.pk}") for n in notes)
    assert any("Called the customer back." in n for n in notes)
    assert any("assigned to: agent2" in n for n in notes)


def test_customer_service_refund_started_from_a_complaint_goes_through_refund_create(client):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    agent = cw.agent()
    client.force_login(agent)
    response = client.post(reverse("complaint-new"), {
        "payment": p.pk, "customer_contact": "u-1@example.com", "category": "wants_refund",
        "description": "Item never delivered.",
    })
    complaint = Complaint.objects.get()
    assert response.status_code == 302 and complaint.refund_id is None

    url = reverse("complaint-refund", args=[complaint.pk])
    page = client.get(reverse("complaint-detail", args=[complaint.pk]))
    key = page.context["refund_form"].initial["request_key"]
    assert f'value="{key}"' in page.content.decode()
    form = {"amount": "25.00", "direction": "original", "reason": "goods not delivered", "request_key": key}
    assert client.post(url, form).status_code == 302
    # The same form submitted twice (a double click) is the same refund.
    assert client.post(url, form).status_code == 302
    refund = Refund.objects.get(source=Refund.Source.CUSTOMER_SERVICE)
    assert refund.amount == 2500 and refund.payment_id == p.pk
    assert refund.created_by == "user:agent1" and refund.created_by_user == agent
    assert refund.status == Refund.Status.APPROVED and refund.reason == f"complaint #{complaint.pk}: goods not delivered"
    assert ComplaintRefund.objects.get(refund=refund).complaint_id == complaint.pk
    # The same rules as any refund: the money is held from the merchant's refund source.
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 2500
    # The refund's timeline says where it came from; the complaint logs it.
    assert any(n.startswith(f"complaint #{complaint.pk}: refund started") for n in _notes_on(refund))
    assert complaint.events.filter(kind=ComplaintEvent.Kind.REFUND_STARTED).count() == 1
    page = client.get(reverse("complaint-detail", args=[complaint.pk])).content.decode()
    assert refund.out_refund_no in page

    # Later actions on the complaint reach the refund it started.
    client.post(reverse("complaint-note", args=[complaint.pk]), {"body": "Customer confirmed the amount."})
    assert any("Customer confirmed the amount." in n for n in _notes_on(refund))

    # Past what is refundable: refused with the reason, the typed values kept.
    refused = client.post(
        url, {"amount": "80.00", "direction": "original", "reason": "rest of the order", "request_key": "ab" * 8}
    )
    body = refused.content.decode()
    assert refused.status_code == 422 and "AMOUNT_EXCEEDS_REFUNDABLE" in body
    assert 'value="80.00"' in body and "rest of the order" in body
    assert Refund.objects.count() == 1


def test_a_flagged_customer_service_refund_waits_for_another_persons_review(client):
    m = f.merchant(review_threshold=1000)
    p = f.payment(m, amount=10000)
    agent = cw.agent()
    complaint = complaint_services.complaint_open(
        user=agent, payment=p, customer_contact="x", category="wants_refund", description="y"
    )
    refund, created = complaint_services.complaint_start_refund(
        complaint_id=complaint.pk, amount=5000, reason="big one", user=agent, request_key="k1"
    )
    assert created and refund.status == Refund.Status.PENDING_REVIEW
    # A double submit of the same form is a replay, not a second refund.
    again, created_again = complaint_services.complaint_start_refund(
        complaint_id=complaint.pk, amount=5000, reason="big one", user=agent, request_key="k1"
    )
    assert (again.pk, created_again) == (refund.pk, False)


def test_complaint_list_filters_in_the_url_and_keyset_pages_without_counting(client):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    agent = cw.agent()
    for i in range(55):
        complaint_services.complaint_open(
            user=agent, payment=p, customer_contact=f"c{i}", category="slow" if i % 2 else "other", description="d"
        )
    client.force_login(agent)
    with CaptureQueriesContext(connection) as queries:
        first = client.get(reverse("complaints"))
    assert first.status_code == 200
    # The navigation's badge counts at most 1,000 rows (a LIMIT inside); the list counts nothing.
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper() and "complaint" in q["sql"]]
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    rows = first.context["page"].rows
    assert len(rows) == 50 and rows[0].pk > rows[-1].pk
    cursor = first.context["page"].next_after
    assert f"after={cursor}" in first.content.decode()
    second = client.get(reverse("complaints"), {"after": cursor})
    assert len(second.context["page"].rows) == 5 and second.context["page"].next_after is None

    slow = client.get(reverse("complaints"), {"category": "slow", "status": "all"})
    assert {c.category for c in slow.context["page"].rows} == {"slow"}
    assert client.get(reverse("complaints"), {"status": "closed"}).context["page"].rows == []
    mine = client.get(reverse("complaints"), {"assignee": "me"})
    assert mine.context["page"].rows == []


def test_who_may_open_and_work_complaints(client):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    agent = cw.agent()
    complaint = complaint_services.complaint_open(
        user=agent, payment=p, customer_contact="x", category="other", description="y"
    )
    client.force_login(cw.finance())
    assert client.get(reverse("complaints")).status_code == 403
    client.force_login(cw.auditor())
    assert client.get(reverse("complaints")).status_code == 200
    assert client.get(reverse("complaint-detail", args=[complaint.pk])).status_code == 200
    assert client.post(reverse("complaint-note", args=[complaint.pk]), {"body": "no"}).status_code == 403
    client.logout()
    assert client.get(reverse("complaints")).status_code == 302
