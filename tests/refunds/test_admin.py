import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from merchants.models import LedgerTransaction, Merchant
from refunds import roles
from refunds import services as refund_services
from refunds.models import Refund, RefundEvent
from tests import factories as f

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:refunds_refund_changelist")


def refund(out_refund_no: str) -> Refund:
    return Refund.objects.get(out_refund_no=out_refund_no)


def change_url(r: Refund) -> str:
    return reverse("admin:refunds_refund_change", args=[r.pk])


def run_action(client, action: str, *refunds: Refund):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(r.pk) for r in refunds]}, follow=True
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# The changelist


def test_refund_changelist_shows_refunds_with_formatted_amounts(login):
    response = login("admin").get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    for expected in ("DEMO-R-003", "DEMO-T-003", "CNY 123.50", "DEMO1 Demo Coffee", "Failed", "Customer service"):
        assert expected in page


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"status__exact": "FAILED"}, {"DEMO-R-003"}),
        ({"status__exact": "PENDING_REVIEW"}, {"DEMO-R-004", "DEMO-R-009"}),
        ({"direction__exact": "balance"}, {"DEMO-R-101"}),
        ({"source__exact": "customer_service", "status__exact": "REJECTED"}, {"DEMO-R-008"}),
        ({"q": "DEMO-R-003"}, {"DEMO-R-003"}),
        ({"q": "DEMO-T-004"}, {"DEMO-R-004"}),
        ({"q": "demo-user-8"}, {"DEMO-R-008"}),
        ({"q": "DEMO"}, set()),  # exact matches only: no LIKE scan of a big table
    ],
)
def test_refund_changelist_filters_and_searches(login, query, expected):
    response = login("admin").get(CHANGELIST, query)

    assert response.status_code == 200
    shown = {r.out_refund_no for r in response.context["cl"].result_list}
    assert shown == expected


def test_refund_changelist_finds_a_refund_by_its_id(login):
    client = login("admin")
    target = refund("DEMO-R-006")

    response = client.get(CHANGELIST, {"q": str(target.pk)})

    assert [r.pk for r in response.context["cl"].result_list] == [target.pk]


def test_refund_changelist_queries_do_not_grow_with_the_number_of_refunds(login):
    client = login("admin")
    client.get(CHANGELIST)  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as few:
        client.get(CHANGELIST)
    m = f.merchant(funded=10**7)
    for _ in range(15):
        f.refund(m, f.payment(m, amount=1000), 400)
    with CaptureQueriesContext(connection) as many:
        response = client.get(CHANGELIST)

    assert len(response.context["cl"].result_list) > 20
    assert len(many) == len(few)


# The detail page


def test_refund_page_shows_legs_timeline_and_ledger_entries(login):
    failed = refund("DEMO-R-003")

    response = login("admin").get(change_url(failed))

    assert response.status_code == 200
    page = response.content.decode()
    leg = failed.legs.get()
    assert leg.route == "bank"
    assert "ACCOUNT_CLOSED" in page
    assert reverse("admin:payment_channels_channel_change", args=[leg.channel_id]) in page
    # every transition of the timeline, with who made it
    transitions = RefundEvent.objects.filter(refund=failed, kind=RefundEvent.Kind.TRANSITION)
    assert {e.to_status for e in transitions} >= {"PROCESSING", "FAILED"}
    for event in transitions:
        assert event.actor in page
    assert "channel:sandbox" in page
    # the hold: CNY 123.50 out of pending settlement into the refund hold
    assert "DEMO1 pending_settlement CNY" in page
    assert "DEMO1 refund_hold CNY" in page
    assert "-12350" in page and "+12350" in page
    hold = LedgerTransaction.objects.get(reference=f"refund:{failed.pk}")
    assert reverse("admin:merchants_ledgertransaction_change", args=[hold.pk]) in page


def test_refund_page_is_read_only(login):
    response = login("admin").get(change_url(refund("DEMO-R-003")))

    page = response.content.decode()
    assert 'name="status"' not in page
    assert 'name="_save"' not in page
    assert response.context["has_change_permission"] is False


def test_posting_a_status_to_the_refund_page_does_not_change_it(login):
    client = login("admin")
    target = refund("DEMO-R-004")

    response = client.post(change_url(target), {"status": "SUCCEEDED", "amount": 1, "_save": "Save"})

    assert response.status_code == 403
    target = refund("DEMO-R-004")
    assert target.status == Refund.Status.PENDING_REVIEW
    assert target.amount == 60000


def test_refunds_cannot_be_added_or_deleted_in_the_admin(login):
    client = login("admin")
    target = refund("DEMO-R-001")

    assert client.get(reverse("admin:refunds_refund_add")).status_code == 403
    assert client.post(reverse("admin:refunds_refund_delete", args=[target.pk]), {"post": "yes"}).status_code == 403
    assert Refund.objects.filter(pk=target.pk).exists()
    assert "delete_selected" not in login("admin").get(CHANGELIST).content.decode()


# Review actions


def test_approve_action_approves_a_refund_pending_review(login):
    target = refund("DEMO-R-004")  # asked by the agent

    response = run_action(login("admin"), "approve_selected", target)

    assert response.status_code == 200
    # approved; its balance leg is paid at once, so the refund is already on its way
    assert refund("DEMO-R-004").status in (Refund.Status.APPROVED, Refund.Status.PROCESSING)
    assert "1 refund(s) approved." in messages_of(response)
    approval = RefundEvent.objects.get(refund=target, leg=None, to_status="APPROVED", kind=RefundEvent.Kind.TRANSITION)
    assert approval.actor == "user:admin"


def test_approve_action_refuses_the_person_who_created_the_refund(login):
    # An installation that lets supervisors into the model admin: four eyes still hold there.
    get_user_model().objects.filter(username="supervisor").update(is_staff=True)
    own = refund("DEMO-R-009")  # asked by the supervisor
    other = refund("DEMO-R-004")  # asked by the agent

    response = run_action(login("supervisor"), "approve_selected", own, other)

    assert refund("DEMO-R-009").status == Refund.Status.PENDING_REVIEW
    assert refund("DEMO-R-004").status != Refund.Status.PENDING_REVIEW  # one refusal does not stop the others
    messages = messages_of(response)
    assert any("DEMO1/DEMO-R-009" in m and "another person must approve it" in m for m in messages)
    assert "1 refund(s) approved." in messages


def test_the_admin_cannot_approve_a_refund_the_admin_created(login):
    client = login("admin")
    admin_user = get_user_model().objects.get(username="admin")
    m = Merchant.objects.get(code="DEMO1")
    own, _ = refund_services.refund_create(
        merchant=m, out_trade_no=f.payment(m, amount=90000).out_trade_no, out_refund_no="ADMIN-OWN-1", amount=70000,
        actor="user:admin", user=admin_user, source=Refund.Source.CUSTOMER_SERVICE,
    )
    assert own.status == Refund.Status.PENDING_REVIEW

    response = run_action(client, "approve_selected", own)

    assert refund(own.out_refund_no).status == Refund.Status.PENDING_REVIEW
    assert any("another person must approve it" in m for m in messages_of(response))


def test_a_second_person_may_approve_what_the_supervisor_created(login):
    run_action(login("admin"), "approve_selected", refund("DEMO-R-009"))

    assert refund("DEMO-R-009").status == Refund.Status.APPROVED


def test_reject_action_rejects_with_a_reason_naming_the_user_and_releases_the_hold(login):
    target = refund("DEMO-R-004")
    payment = target.payment

    response = run_action(login("admin"), "reject_selected", target)

    target = refund("DEMO-R-004")
    assert target.status == Refund.Status.REJECTED
    event = RefundEvent.objects.get(refund=target, leg=None, to_status="REJECTED")
    assert event.reason == "rejected in admin by admin"
    assert LedgerTransaction.objects.filter(reference=f"refund:{target.pk}", kind="hold_release").exists()
    payment.refresh_from_db()
    assert payment.refunded_amount == 0
    assert "1 refund(s) rejected." in messages_of(response)


def test_review_actions_report_each_refund_not_pending_review(login):
    response = run_action(login("admin"), "approve_selected", refund("DEMO-R-001"), refund("DEMO-R-003"))

    messages = messages_of(response)
    assert any("DEMO1/DEMO-R-001: not approved: refund is APPROVED" in m for m in messages)
    assert any("DEMO1/DEMO-R-003: not approved: refund is FAILED" in m for m in messages)
    assert refund("DEMO-R-001").status == Refund.Status.APPROVED
    assert refund("DEMO-R-003").status == Refund.Status.FAILED


@pytest.mark.parametrize("username", ["finance", "ops", "auditor"])
def test_staff_without_the_review_permission_see_refunds_but_cannot_review_them(login, username):
    client = login(username)

    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert "approve_selected" not in page.content.decode()
    run_action(client, "approve_selected", refund("DEMO-R-004"))
    run_action(client, "reject_selected", refund("DEMO-R-004"))
    assert refund("DEMO-R-004").status == Refund.Status.PENDING_REVIEW
    assert client.get(change_url(refund("DEMO-R-004"))).status_code == 200


# Payments


def test_payment_page_shows_parts_refunds_and_amounts(login):
    mixed = f"/admin/refunds/payment/{refund('DEMO-R-004').payment_id}/change/"

    response = login("admin").get(mixed)

    assert response.status_code == 200
    page = response.content.decode()
    for expected in ("DEMO-COUPON-10", "DEMO-WX-004", "Platform balance", "Coupon"):
        assert expected in page
    assert change_url(refund("DEMO-R-004")) in page  # the refund links to its page
    assert "CNY 1,000.00" in page  # paid
    assert "CNY 600.00" in page  # refunded
    assert "CNY 400.00" in page  # refundable
    assert response.context["has_change_permission"] is False


def test_payments_cannot_be_added_changed_or_deleted(login):
    client = login("admin")
    payment = refund("DEMO-R-001").payment
    url = reverse("admin:refunds_payment_change", args=[payment.pk])

    assert client.get(reverse("admin:refunds_payment_add")).status_code == 403
    assert client.post(url, {"amount": 1}).status_code == 403
    payment.refresh_from_db()
    assert payment.amount == 10000


# Every page of the apps' admins


def test_every_admin_page_of_the_apps_renders(login):
    client = login("admin")
    ours = [m for m in admin.site._registry if m._meta.app_label in ("merchants", "payment_channels", "refunds")]
    assert len(ours) >= 10

    for model in ours:
        opts = model._meta
        changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert changelist.status_code == 200, opts.label
        first = model.objects.first()
        if first is not None:
            page = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
            assert page.status_code == 200, opts.label
        add = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        assert add.status_code in (200, 403), opts.label


@pytest.mark.parametrize("username, group", list(roles.DEMO_USERS.items()))
def test_the_admin_opens_to_the_staff_roles_only(login, username, group):
    response = login(username).get(reverse("admin:index"))

    assert response.status_code == (200 if group in roles.STAFF_ROLES else 302)
