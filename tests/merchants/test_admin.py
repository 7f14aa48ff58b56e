import hashlib
import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from channels.models import Channel
from merchants.models import Account, ApiKey, FxRate, LedgerTransaction, Merchant
from merchants.services import api_key_create
from refunds.models import ConfigChange
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.invalid", None))
    return client


@pytest.fixture
def viewer_client(client):
    """Staff with only the view permissions of the merchants app."""
    user = get_user_model().objects.create_user("viewer", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="merchants", codename__startswith="view_"))
    client.force_login(user)
    return client


class _Form(HTMLParser):
    """The name/value pairs a browser would post from the page's main form."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "checkbox"):
            self.data[name] = a.get("value") or ""
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.data[name] = "on"
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data.strip()

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_of(response) -> dict[str, str]:
    parser = _Form()
    parser.feed(response.content.decode())
    parser.data.pop("q", None)  # the header's search box, if any
    return parser.data


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# API keys


def test_adding_an_api_key_shows_the_key_once_and_stores_only_its_hash(admin_client):
    m = f.merchant("K100")

    response = admin_client.post(
        reverse("admin:merchants_apikey_add"), {"merchant": m.pk, "scope": "refunds", "name": "shop"}, follow=True
    )

    assert response.status_code == 200
    shown = [msg for msg in messages_of(response) if "shown only this once" in msg]
    assert len(shown) == 1
    raw = re.search(r"<code>(rk_live_[\w-]+)</code>", shown[0]).group(1)
    key = ApiKey.objects.get(merchant=m)
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert (key.scope, key.name, key.prefix) == ("refunds", "shop", raw[:16])
    assert raw not in {key.prefix, key.key_hash, key.name}
    # the next page does not show it again
    again = admin_client.get(reverse("admin:merchants_apikey_change", args=[key.pk]))
    assert raw not in again.content.decode()


def test_an_api_keys_hash_owner_and_scope_cannot_be_changed(admin_client):
    m, other = f.merchant("K101"), f.merchant("K102")
    key, _ = api_key_create(merchant=m, scope="payments", name="core")
    url = reverse("admin:merchants_apikey_change", args=[key.pk])
    page = admin_client.get(url)
    assert 'name="key_hash"' not in page.content.decode()

    response = admin_client.post(
        url, {"name": "payment core", "key_hash": "0" * 64, "scope": "refunds", "merchant": other.pk}
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "payment core"
    assert (key.merchant_id, key.scope) == (m.pk, "payments")
    assert key.key_hash != "0" * 64


def test_revoke_action_revokes_the_selected_keys(admin_client):
    m = f.merchant("K103")
    first, _ = api_key_create(merchant=m, scope="refunds")
    second, _ = api_key_create(merchant=m, scope="refunds")
    kept, _ = api_key_create(merchant=m, scope="refunds")

    response = admin_client.post(
        reverse("admin:merchants_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert "2 key(s) revoked." in messages_of(response)
    revoked = dict(ApiKey.objects.values_list("pk", "revoked_at"))
    assert revoked[first.pk] and revoked[second.pk]
    assert revoked[kept.pk] is None


def test_api_keys_are_revoked_not_deleted(admin_client):
    key, _ = api_key_create(merchant=f.merchant("K104"), scope="refunds")

    assert admin_client.get(reverse("admin:merchants_apikey_delete", args=[key.pk])).status_code == 403


# Merchants, accounts and the ledger


def test_merchant_page_shows_its_balances_read_only(admin_client):
    m = f.merchant("K200", funded=123456, refund_source="cash")

    response = admin_client.get(reverse("admin:merchants_merchant_change", args=[m.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "CNY 1,234.56" in page
    assert 'name="accounts-0-balance"' not in page
    assert m.webhook_secret in page  # in full for who may change the merchant


def test_the_webhook_secret_is_masked_for_viewers(viewer_client):
    m = f.merchant("K201")

    page = viewer_client.get(reverse("admin:merchants_merchant_change", args=[m.pk])).content.decode()

    assert m.webhook_secret not in page
    assert m.webhook_secret[:10] + "…" in page


def test_changing_a_merchant_needs_a_reason_kept_in_the_history(admin_client):
    m = f.merchant("K202")
    url = reverse("admin:merchants_merchant_change", args=[m.pk])
    data = form_of(admin_client.get(url)) | {"review_threshold": "30000"}

    refused = admin_client.post(url, data)
    assert refused.status_code == 200
    assert "Say why" in refused.content.decode()
    m.refresh_from_db()
    assert m.review_threshold is None

    saved = admin_client.post(url, data | {"change_note": "more chargebacks this month"})
    assert saved.status_code == 302
    m.refresh_from_db()
    assert m.review_threshold == 30000
    change = ConfigChange.objects.filter(model="merchants.merchant", object_id=str(m.pk)).latest("id")
    assert change.note == "more chargebacks this month"
    assert change.actor == "user:root"
    assert change.after["review_threshold"] == 30000


def test_merchants_cannot_be_deleted(admin_client):
    m = f.merchant("K203")
    assert admin_client.get(reverse("admin:merchants_merchant_delete", args=[m.pk])).status_code == 403


def test_accounts_are_read_only(admin_client):
    m = f.merchant("K204", funded=5000)
    account = Account.objects.get(merchant=m, kind=m.refund_source)
    url = reverse("admin:merchants_account_change", args=[account.pk])

    page = admin_client.get(url)
    assert page.status_code == 200
    assert "CNY 50.00" in page.content.decode()
    assert "Top-up" in page.content.decode()  # its latest entries

    assert admin_client.post(url, {"balance": 10**9}).status_code == 403
    assert admin_client.get(reverse("admin:merchants_account_add")).status_code == 403
    account.refresh_from_db()
    assert account.balance == 5000


def test_ledger_transaction_page_shows_its_entries(admin_client):
    m = f.merchant("K205", funded=7700)
    txn = LedgerTransaction.objects.get(reference="merchant:K205")

    response = admin_client.get(reverse("admin:merchants_ledgertransaction_change", args=[txn.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert f"{m.code} pending_settlement CNY" in page
    assert "platform top_ups CNY" in page
    assert "CNY -77.00" in page and "CNY 77.00" in page
    assert admin_client.post(response.request["PATH_INFO"], {"description": "x"}).status_code == 403


def test_ledger_search_is_an_exact_reference(admin_client):
    f.merchant("K206", funded=100)
    url = reverse("admin:merchants_ledgertransaction_changelist")

    found = admin_client.get(url, {"q": "merchant:K206"}).context["cl"].result_list
    assert [t.reference for t in found] == ["merchant:K206"]
    assert list(admin_client.get(url, {"q": "K206"}).context["cl"].result_list) == []
    assert admin_client.get(url, {"q": "not-a-number"}).status_code == 200


# Exchange rates


def test_adding_an_fx_rate_records_who_set_it(admin_client):
    response = admin_client.post(
        reverse("admin:merchants_fxrate_add"), {"day": "2026-11-20", "base": "usd", "quote": "cny", "rate": "7.12"}
    )

    assert response.status_code == 302
    rate = FxRate.objects.get()
    assert (rate.base, rate.quote, str(rate.rate)) == ("USD", "CNY", "7.12000000")
    assert rate.created_by.username == "root"


@pytest.mark.parametrize(
    "data, error",
    [
        ({"base": "USD", "quote": "usd"}, "must differ"),
        ({"base": "U$D", "quote": "CNY"}, "three letters"),
        ({"base": "USD", "quote": "CNY", "rate": "0"}, "fxrate_positive"),
    ],
)
def test_a_bad_fx_rate_is_refused(admin_client, data, error):
    response = admin_client.post(reverse("admin:merchants_fxrate_add"), {"day": "2026-11-20", "rate": "7.1"} | data)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not FxRate.objects.exists()


def test_a_second_rate_for_the_same_day_and_pair_is_refused(admin_client):
    FxRate.objects.create(day="2026-11-20", base="USD", quote="CNY", rate="7.1")

    response = admin_client.post(
        reverse("admin:merchants_fxrate_add"), {"day": "2026-11-20", "base": "usd", "quote": "cny", "rate": "7.2"}
    )

    assert response.status_code == 200
    assert FxRate.objects.count() == 1


# Channels


def test_channel_list_shows_the_configuration(admin_client):
    f.channel("wechat")
    f.channel("bank", processing_start="09:00", processing_end="17:30")

    page = admin_client.get(reverse("admin:payment_channels_channel_changelist")).content.decode()

    assert "all day" in page
    assert "09:00–17:30" in page


def test_changing_a_channel_needs_a_new_note_and_both_processing_hours(admin_client):
    ch = f.channel("bank", note="initial setup")
    url = reverse("admin:payment_channels_channel_change", args=[ch.pk])
    data = form_of(admin_client.get(url)) | {"refund_window_days": "120"}
    assert data["note"] == ""  # not the last change's reason

    assert admin_client.post(url, data).status_code == 200  # refused: no note
    half = admin_client.post(url, data | {"note": "bank cut-off", "processing_start": "09:00"})
    assert half.status_code == 200
    assert "both processing hours" in half.content.decode()

    saved = admin_client.post(url, data | {"note": "the bank shortened its window"})
    assert saved.status_code == 302
    ch.refresh_from_db()
    assert ch.refund_window_days == 120
    change = ConfigChange.objects.filter(model="payment_channels.channel", object_id=str(ch.pk)).latest("id")
    assert change.note == "the bank shortened its window"
    assert change.before["refund_window_days"] == 180 and change.after["refund_window_days"] == 120


def test_channels_are_disabled_not_deleted(admin_client):
    ch = f.channel("alipay")
    assert admin_client.get(reverse("admin:payment_channels_channel_delete", args=[ch.pk])).status_code == 403
    assert Channel.objects.filter(pk=ch.pk).exists()


def test_merchant_list_and_shortfalls_render(admin_client):
    f.merchant("K300")
    assert admin_client.get(reverse("admin:merchants_merchant_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:merchants_balanceshortfall_changelist")).status_code == 200
    assert Merchant.objects.filter(code="K300").exists()
