import datetime

import pytest
from django.urls import reverse

from channels.models import Channel
from merchants.models import Account, LedgerTransaction, Merchant
from refunds.models import ConfigChange
from tests import factories as f
from tests.ui import casework as cw

pytestmark = pytest.mark.django_db


def _merchant(code) -> Merchant:
    return Merchant.objects.get(code=code)


def test_merchant_pages_show_accounts_holds_and_ledger_in_keyset_pages(client):
    m = f.merchant("M-OPS", name="Shop")
    p = f.payment(m, amount=10000)
    f.refund(m, p, 3000)
    for _ in range(55):
        f.merchant_services.merchant_fund(merchant=m, account_kind=Account.Kind.CASH, amount=100, by="test")
    client.force_login(cw.ops())
    listing = client.get(reverse("merchant-list"), {"q": "M-OPS"})
    assert listing.status_code == 200 and "M-OPS" in listing.content.decode()
    assert "CNY 55.00" in listing.content.decode()  # the cash balance, shown with its currency

    page = client.get(reverse("merchant-detail", args=["M-OPS"]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "CNY 70.00" in body and "CNY 30.00" in body  # pending settlement after the hold; the hold
    entries = page.context["entries"]
    assert len(entries.rows) == 50 and entries.next_after
    rest = client.get(reverse("merchant-detail", args=["M-OPS"]), {"after": entries.next_after}).context["entries"]
    assert rest.rows and rest.rows[0].pk < entries.rows[-1].pk and rest.next_after is None

    # Finance reads the merchant, without the forms that change it.
    client.force_login(cw.finance())
    page = client.get(reverse("merchant-detail", args=["M-OPS"]))
    assert page.status_code == 200 and 'id="top-up"' not in page.content.decode()
    assert "Only merchant operations change these." in page.content.decode()
    assert client.post(reverse("merchant-top-up", args=["M-OPS"]), {"reason": "x"}).status_code == 403

    client.force_login(cw.agent())
    assert client.get(reverse("merchant-list")).status_code == 403


def test_merchant_settings_change_needs_a_note_and_is_kept_with_before_and_after(client):
    f.merchant("M-SET")
    ops = cw.ops()
    client.force_login(ops)
    url = reverse("merchant-settings", args=["M-SET"])
    form = {
        "status": "active", "refund_source": "cash", "fallback_route": "balance", "allocation_strategy": "proportional",
        "review_threshold": "500.00",
    }
    refused = client.post(url, form)
    assert refused.status_code == 400 and 'value="500.00"' in refused.content.decode()
    assert _merchant("M-SET").refund_source == "pending_settlement"

    assert client.post(url, {**form, "note": "merchant asked to refund from cash"}).status_code == 302
    m = _merchant("M-SET")
    assert (m.refund_source, m.fallback_route, m.review_threshold) == ("cash", "balance", 50000)
    change = ConfigChange.objects.filter(model="merchants.merchant", object_id=str(m.pk)).latest("id")
    assert change.action == "updated" and change.changed_by == ops and change.actor == "user:ops1"
    assert change.note == "merchant asked to refund from cash"
    assert change.before["refund_source"] == "pending_settlement" and change.after["refund_source"] == "cash"
    assert change.before["fallback_route"] == "manual" and change.after["fallback_route"] == "balance"
    assert change.before["review_threshold"] is None and change.after["review_threshold"] == 50000
    assert set(change.changed_fields) == {"refund_source", "fallback_route", "review_threshold"}
    # The webhook secret is never kept in clear, only as a fingerprint.
    assert m.webhook_secret not in str(change.before) + str(change.after)

    client.force_login(cw.agent())
    assert client.post(url, {**form, "note": "x"}).status_code == 403


def test_top_up_goes_through_the_ledger_with_who_and_why(client):
    m = f.merchant("M-TOP", refund_source="cash")
    client.force_login(cw.ops())
    url = reverse("merchant-top-up", args=["M-TOP"])
    assert client.post(url, {"account_kind": "cash", "amount": "120.50", "currency": "CNY"}).status_code == 400
    assert client.post(
        url, {"account_kind": "cash", "amount": "120.50", "currency": "CNY", "reason": "wire 2026-11-26"}
    ).status_code == 302
    assert f.balance(m, Account.Kind.CASH) == 12050
    txn = LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.TOP_UP, reference="merchant:M-TOP").get()
    assert txn.created_by == "user:ops1" and "wire 2026-11-26" in txn.description


def test_channel_changes_need_a_note_and_are_kept(client):
    f.channel("wechat")
    ops = cw.ops()
    client.force_login(ops)
    listing = client.get(reverse("channel-list"))
    assert listing.status_code == 200 and "wechat" in listing.content.decode()

    toggle = reverse("channel-toggle", args=["wechat"])
    assert client.post(toggle, {"enabled": "0", "note": ""}).status_code == 400
    assert Channel.objects.get(code="wechat").enabled
    assert client.post(toggle, {"enabled": "0", "note": "WeChat maintenance tonight"}).status_code == 302
    channel = Channel.objects.get(code="wechat")
    assert not channel.enabled and channel.note == "WeChat maintenance tonight"
    change = ConfigChange.objects.filter(model="payment_channels.channel").latest("id")
    assert (change.before["enabled"], change.after["enabled"], change.note) == (True, False, "WeChat maintenance tonight")
    assert change.changed_by == ops and change.changed_fields == ["enabled"]

    edit = reverse("channel-edit", args=["wechat"])
    page = client.get(edit)
    assert page.status_code == 200
    data = {k: v for k, v in page.context["form"].initial.items() if k in page.context["form"].fields and v is not None}
    data.update(refund_window_days="300", enabled="on", dedupes_by_refund_no="on")
    data.pop("processing_start", None), data.pop("processing_end", None)
    assert client.post(edit, data).status_code == 400  # no note
    assert client.post(edit, {**data, "change_note": "contract renewed: 300-day window"}).status_code == 302
    change = ConfigChange.objects.filter(model="payment_channels.channel").latest("id")
    assert set(change.changed_fields) == {"refund_window_days", "enabled"}
    assert (change.before["refund_window_days"], change.after["refund_window_days"]) == (365, 300)

    client.force_login(cw.agent())
    assert client.get(reverse("channel-list")).status_code == 403


def test_auditors_browse_the_configuration_history_including_admin_changes(client, admin_client, admin_user):
    f.merchant("M-AUD")
    ops = cw.ops()
    client.force_login(ops)
    client.post(reverse("merchant-settings", args=["M-AUD"]), {
        "status": "suspended", "refund_source": "pending_settlement", "fallback_route": "manual",
        "allocation_strategy": "proportional", "note": "chargeback fraud under review",
    })
    # An FX rate set in the admin is kept too, with the admin's name.
    response = admin_client.post(reverse("admin:merchants_fxrate_add"), {
        "day": datetime.date(2026, 11, 26).isoformat(), "base": "USD", "quote": "CNY", "rate": "7.12345678",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    fx = ConfigChange.objects.get(model="merchants.fxrate")
    assert fx.action == "created" and fx.changed_by == admin_user and fx.after["rate"] == "7.12345678"

    client.force_login(cw.auditor())
    page = client.get(reverse("config-changes"))
    body = page.content.decode()
    assert page.status_code == 200
    assert "chargeback fraud under review" in body and "suspended" in body and "user:ops1" in body
    assert "7.12345678" in body
    only = client.get(reverse("config-changes"), {"model": "merchants.fxrate"})
    assert [row["change"].model for row in only.context["rows"]] == ["merchants.fxrate"]

    client.force_login(cw.agent())
    assert client.get(reverse("config-changes")).status_code == 403
