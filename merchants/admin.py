"""Admin for merchants and money: configuration is editable, balances and the ledger are not.

Money moves only through services (top-ups, refunds, settlement); a form that could edit a
balance or an entry would break "a balance equals the sum of its entries".
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import EmptyPage, Paginator
from django.db import connections
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from . import services, webhooks
from .models import (
    Account,
    ApiKey,
    BalanceShortfall,
    FxRate,
    LedgerEntry,
    LedgerTransaction,
    Merchant,
    WebhookAttempt,
    WebhookDelivery,
)
from .money import format_money

# ---------------------------------------------------------------------------------------------
# Shared by the money admins of every app (refunds imports these).


class ReadOnlyAdminMixin:
    """Rows written only by services: viewable, never added, changed or deleted in a form."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class EstimatedCountPaginator(Paginator):
    """A paginator for big tables: never a full COUNT(*), never a deep OFFSET.

    - Unfiltered, on PostgreSQL, past ESTIMATE_ABOVE rows: the planner's estimate
      (pg_class.reltuples, kept by autovacuum/ANALYZE) instead of a sequential scan.
    - Filtered (or searched): the rows are counted up to MAX_PAGES pages only
      (``SELECT COUNT(*) FROM (... LIMIT n)``), so a filter matching most of a big table costs
      what 100 pages cost, not what the table costs.
    - At most MAX_PAGES pages are offered; a deeper page number shows the last of them. Past
      it, a filter or the search narrows the list (an OFFSET of a million rows reads a million).

    `count_label` says how exact `count` is, for the admin's templates ("about 1,000,000",
    "more than 10,000"); it is empty when the count is exact.
    """

    ESTIMATE_ABOVE = 10_000
    MAX_PAGES = 100

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.count_label = ""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is None:  # a list, not a queryset
            return super().count
        db = self.object_list.db
        if not query.where and connections[db].vendor == "postgresql":
            with connections[db].cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [connections[db].ops.quote_name(query.model._meta.db_table)])
                row = cursor.fetchone()
            if row and row[0] > self.ESTIMATE_ABOVE:
                self.count_label = f"about {float(f'{row[0]:.2g}'):,.0f}"  # 999,990: about 1,000,000
                return int(row[0])
        cap = self.MAX_PAGES * self.per_page
        counted = self.object_list.values("pk").order_by()[: cap + 1].count()
        if counted > cap:
            self.count_label = f"more than {cap:,}"
        return counted

    @cached_property
    def num_pages(self) -> int:
        return min(super().num_pages, self.MAX_PAGES)

    @property
    def pages_capped(self) -> bool:
        return bool(self.count_label) and self.count > self.MAX_PAGES * self.per_page

    def validate_number(self, number):
        try:
            return super().validate_number(number)
        except EmptyPage:
            if self.pages_capped and int(number) > self.num_pages:
                return self.num_pages  # a page past the offered ones: the last offered
            raise


class IndexedOrderChangeList(ChangeList):
    """A changelist that sorts only by the columns in `sortable_by`, also when the URL asks for
    another (``?o=5``): on a big table any other order sorts the whole table for one page."""

    def get_ordering(self, request, queryset):
        asked = self.params.get(ORDER_VAR)
        if asked and self.sortable_by is not None:
            kept = [p for p in str(asked).split(".") if self._sortable(p)]
            if kept:
                self.params[ORDER_VAR] = ".".join(kept)
            else:  # none left: the default order, not just the primary key's
                del self.params[ORDER_VAR]
        return super().get_ordering(request, queryset)

    def _sortable(self, param: str) -> bool:
        try:
            return self.list_display[int(param.rpartition("-")[2])] in self.sortable_by
        except (IndexError, ValueError):
            return False


class BigTableAdminMixin:
    """Changelists of tables that grow with the traffic (refunds, payments, the ledger...):
    no full count (show_full_result_count off, EstimatedCountPaginator), no deep pages, no
    facet counts, and only the columns an index can sort (set `sortable_by` to those)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # Half of Django's 100: rendering a row costs about 0.5 ms of the request, and these lists
    # are for finding rows with a filter or the search, not for reading page after page.
    list_per_page = 50

    def get_changelist(self, request, **kwargs):
        return IndexedOrderChangeList


def distinct_values(model, field: str, *, limit: int = 200) -> list:
    """The distinct values of an indexed column, for a list filter's choices.

    On PostgreSQL a loose index scan (one index probe per value, a recursive CTE) instead of
    SELECT DISTINCT, which reads the whole table: the column must lead an index."""
    qs = model._default_manager.all()
    connection = connections[qs.db]
    if connection.vendor != "postgresql":
        return list(qs.order_by(field).values_list(field, flat=True).distinct()[:limit])
    table, column = (connection.ops.quote_name(n) for n in (model._meta.db_table, model._meta.get_field(field).column))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE v(x) AS ((SELECT {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY 1 LIMIT 1) "
            f"UNION ALL SELECT (SELECT {column} FROM {table} WHERE {column} > v.x ORDER BY 1 LIMIT 1) FROM v "
            f"WHERE v.x IS NOT NULL) SELECT x FROM v WHERE x IS NOT NULL LIMIT %s",
            [limit],
        )
        return [row[0] for row in cursor.fetchall()]


class ExactSearchMixin:
    """Search by identifiers with exact matches (indexable), never a LIKE '%...%' scan of a big table.

    Each field in `search_fields` is compared with the whole search term; a field the term
    cannot be (a UUID, an integer id) is skipped instead of raising. The fields are looked up
    one by one, each through its own index, and the changelist keeps the rows whose key is in
    the UNION of the matches: an OR of the conditions over a join could use no index at all.
    """

    search_help_text = "Exact match."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        branches = self.search_branches(request, queryset.model, term)
        if not branches:
            return queryset.none(), False
        matches = branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]
        # Only forward relations are searched, so no row can appear twice.
        return queryset.filter(pk__in=matches), False

    def search_branches(self, request, model, term: str) -> list:
        """One `values("pk")` queryset per way the term can match; subclasses may add some."""
        branches = []
        for name in self.get_search_fields(request):
            path = name.lstrip("=^@")
            field = get_fields_from_path(model, path)[-1]
            try:
                value = field.to_python(term)
            except ValidationError:
                continue
            branches.append(model._default_manager.filter(**{path: value}).values("pk").order_by())
        return branches


def money_display(minor: int | None, currency: str) -> str:
    return format_money(minor, currency)


def user_may(request, action: str, model) -> bool:
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


# ---------------------------------------------------------------------------------------------
# Merchants and accounts


class AccountInline(ReadOnlyTabularInline):
    model = Account
    fields = ("kind", "currency", "balance_display", "may_go_negative")
    readonly_fields = fields
    ordering = ("currency", "kind")
    show_change_link = True
    verbose_name_plural = "accounts (balances move only through the ledger)"

    @admin.display(description="balance")
    def balance_display(self, obj: Account) -> str:
        return money_display(obj.balance, obj.currency)


class MerchantForm(forms.ModelForm):
    webhook_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", label="Webhook URL",
        help_text="Default address for refund notifications.",
    )
    change_note = forms.CharField(
        label="Why", required=False, max_length=500, widget=forms.TextInput(attrs={"size": 80}),
        help_text="Kept in the configuration history with your name; required when you change a merchant.",
    )

    class Meta:
        model = Merchant
        fields = (
            "code", "name", "status", "refund_source", "fallback_route", "allocation_strategy", "review_threshold",
            "webhook_url",
        )

    def clean(self):
        data = super().clean()
        if self.instance.pk and self.has_changed() and not (data.get("change_note") or "").strip():
            self.add_error("change_note", "Say why: the note is kept in the configuration history.")
        return data


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    form = MerchantForm
    list_display = (
        "code", "name", "status", "refund_source", "fallback_route", "allocation_strategy", "threshold_display",
        "created_at",
    )
    list_filter = ("status", "refund_source", "fallback_route", "allocation_strategy")
    search_fields = ("code", "name")
    inlines = (AccountInline,)

    def get_fieldsets(self, request, obj=None):
        # The webhook secret signs the merchant's notifications: shown in full only to those
        # who may change the merchant (operations hand it over), masked for everyone else.
        secret = "webhook_secret" if user_may(request, "change", Merchant) else "webhook_secret_masked"
        return (
            (None, {"fields": ("code", "name", "status")}),
            ("Refunds", {"fields": ("refund_source", "fallback_route", "allocation_strategy", "review_threshold")}),
            ("Notifications", {"fields": ("webhook_url", secret) if obj else ("webhook_url",)}),
            ("Record", {"fields": ("created_at", "change_note")}),
        )

    def save_model(self, request, obj: Merchant, form, change: bool) -> None:
        # refunds/config_audit.py records the save with these (merchants may not import refunds).
        obj._config_user = request.user
        obj._config_note = form.cleaned_data.get("change_note", "").strip() or ("" if change else "created in the admin")
        super().save_model(request, obj, form, change)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("created_at",)
        # API clients and ledger references ("merchant:<code>") know the merchant by its code.
        return ("code", "webhook_secret", "webhook_secret_masked", "created_at")

    def has_delete_permission(self, request, obj=None):
        return False  # accounts, payments and refunds point at it: suspend it instead

    @admin.display(description="review threshold", ordering="review_threshold")
    def threshold_display(self, obj: Merchant) -> str:
        # minor units of the refund's currency, whatever it is
        return "—" if obj.review_threshold is None else f"{obj.review_threshold:,}"

    @admin.display(description="webhook secret")
    def webhook_secret_masked(self, obj: Merchant) -> str:
        return obj.webhook_secret[:10] + "…" if obj.webhook_secret else ""


@admin.register(Account)
class AccountAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "owner", "kind", "currency", "balance_display", "may_go_negative")
    list_filter = ("kind", "currency", "may_go_negative")
    list_select_related = ("merchant",)
    search_fields = ("merchant__code", "user_id", "sub_ledger")
    search_help_text = "Exact merchant code, user id or sub-ledger (channel code)."
    fields = ("merchant", "user_id", "sub_ledger", "kind", "currency", "balance_display", "may_go_negative",
              "recent_entries")
    readonly_fields = fields

    RECENT_ENTRIES = 50

    @admin.display(description="owner")
    def owner(self, obj: Account) -> str:
        if obj.merchant_id:
            return obj.merchant.code
        return obj.user_id or obj.sub_ledger or "platform"

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, obj: Account) -> str:
        return money_display(obj.balance, obj.currency)

    @admin.display(description=f"latest {RECENT_ENTRIES} entries")
    def recent_entries(self, obj: Account):
        entries = list(
            obj.entries.select_related("transaction").order_by("-id")[: self.RECENT_ENTRIES]  # index entry_account_recent
        )
        if not entries:
            return "—"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td style="text-align:right">{}</td></tr>',
            (
                (
                    reverse("admin:merchants_ledgertransaction_change", args=[e.transaction_id]), e.transaction_id,
                    e.transaction.created_at, e.transaction.get_kind_display(), e.transaction.reference,
                    money_display(e.amount, e.currency),
                )
                for e in entries
            ),
        )
        return format_html(
            "<table><thead><tr><th>transaction</th><th>at</th><th>kind</th><th>reference</th><th>amount</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            rows,
        )


# ---------------------------------------------------------------------------------------------
# The ledger


class LedgerEntryInline(ReadOnlyTabularInline):
    model = LedgerEntry
    fields = ("account", "amount", "currency", "amount_display")
    readonly_fields = fields

    def get_queryset(self, request):
        # Account.__str__ names the merchant: fetch it with the entries, not once per row.
        return super().get_queryset(request).select_related("account__merchant")

    @admin.display(description="formatted")
    def amount_display(self, obj: LedgerEntry) -> str:
        return money_display(obj.amount, obj.currency)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "kind", "reference", "description", "created_by")
    list_filter = ("kind",)
    # Not the author: one service account writes most of the ledger, so that search would
    # match (and sort) a large part of a big table; the author shows in the list and the page.
    search_fields = ("reference", "id")
    search_help_text = 'Exact reference ("refund:<id>", "payment:<id>", "merchant:<code>") or id.'
    sortable_by = ("id", "created_at", "reference")  # indexed
    fields = ("kind", "reference", "description", "created_by", "created_at")
    readonly_fields = fields
    inlines = (LedgerEntryInline,)


# ---------------------------------------------------------------------------------------------
# API keys


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "scope", "merchant", "created_at", "revoked_at")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("merchant",)
    search_fields = ("prefix", "merchant__code", "name")
    autocomplete_fields = ("merchant",)
    actions = ("revoke_selected",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("merchant", "scope", "name")
        return ("merchant", "scope", "name", "prefix", "key_hash", "created_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Only the label may change; a key's owner, scope and hash are what it was issued as.
        return ("merchant", "scope", "prefix", "key_hash", "created_at", "revoked_at")

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays as a record of who held the key

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = services.api_key_create(merchant=obj.merchant, scope=obj.scope, name=obj.name)
        # The admin goes on with `obj` (log entry, redirect): make it the row the service created.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(key, field.attname))
        obj._state.adding = False
        obj._state.db = key._state.db
        self.message_user(
            request,
            format_html(
                "The new key is <code>{}</code>. Copy it now: it is shown only this once and only its hash is kept.",
                raw,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys", permissions=("change",))
    def revoke_selected(self, request, queryset) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True).select_related("merchant"))
        now = timezone.now()
        revoked = ApiKey.objects.filter(pk__in=[k.pk for k in keys], revoked_at__isnull=True).update(revoked_at=now)
        for key in keys:
            self.log_change(request, key, "Revoked")
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)


# ---------------------------------------------------------------------------------------------
# Shortfalls and exchange rates


@admin.register(BalanceShortfall)
class BalanceShortfallAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "merchant", "account_kind", "amount_display", "available_display", "out_refund_no")
    list_filter = ("account_kind", "currency")
    list_select_related = ("merchant",)
    search_fields = ("merchant__code", "out_refund_no")
    search_help_text = "Exact merchant code or out_refund_no."
    fields = ("merchant", "account_kind", "currency", "amount", "available", "out_refund_no", "created_at")
    readonly_fields = fields

    @admin.display(description="refund needed", ordering="amount")
    def amount_display(self, obj: BalanceShortfall) -> str:
        return money_display(obj.amount, obj.currency)

    @admin.display(description="available")
    def available_display(self, obj: BalanceShortfall) -> str:
        return money_display(obj.available, obj.currency)


def _currency_code(value: str) -> str:
    value = (value or "").strip().upper()
    if len(value) != 3 or not value.isalpha():
        raise ValidationError("An ISO 4217 code: three letters.")
    return value


class FxRateForm(forms.ModelForm):
    class Meta:
        model = FxRate
        fields = ("day", "base", "quote", "rate")

    # Field cleaners run before the model's uniqueness check, which so sees the upper-cased codes.
    def clean_base(self) -> str:
        return _currency_code(self.cleaned_data.get("base", ""))

    def clean_quote(self) -> str:
        return _currency_code(self.cleaned_data.get("quote", ""))

    def clean(self):
        data = super().clean()
        if data.get("base") and data.get("base") == data.get("quote"):
            self.add_error("quote", "The quote currency must differ from the base.")
        return data


@admin.register(FxRate)
class FxRateAdmin(admin.ModelAdmin):
    form = FxRateForm
    list_display = ("day", "base", "quote", "rate", "created_by")
    list_filter = ("base", "quote")
    list_select_related = ("created_by",)
    date_hierarchy = "day"
    fields = ("day", "base", "quote", "rate", "created_by")
    readonly_fields = ("created_by",)

    def save_model(self, request, obj: FxRate, form, change: bool) -> None:
        obj.created_by = request.user  # who set the rate that refunds are held at
        super().save_model(request, obj, form, change)


# ---------------------------------------------------------------------------------------------
# Outbound notifications: read-only, except "Redeliver" (an action and a button on the page).


class WebhookAttemptInline(ReadOnlyTabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "status_code", "latency_ms", "error", "response_excerpt")
    readonly_fields = fields
    ordering = ("-id",)
    verbose_name_plural = "attempts (newest first)"


class WebhookEventFilter(admin.SimpleListFilter):
    title = "event"
    parameter_name = "event"

    def lookups(self, request, model_admin):
        return [(event, event) for event in webhooks.EVENTS]

    def queryset(self, request, queryset):
        return queryset.filter(event=self.value()) if self.value() else queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "event", "merchant", "audience", "status", "attempts", "next_attempt",
                    "last_error_short")
    list_filter = ("status", WebhookEventFilter, "audience")
    list_select_related = ("merchant",)
    search_fields = ("reference", "event_id", "merchant__code")
    search_help_text = 'Exact refund id (or "refund:<id>"), event id or merchant code.'
    sortable_by = ("id", "created_at")  # indexed
    fields = (
        "event", "event_id", "audience", "merchant", "reference_link", "url", "status", "attempts", "next_attempt_at",
        "last_error", "created_at", "delivered_at", "dedupe_key", "payload_pretty",
    )
    readonly_fields = fields
    inlines = (WebhookAttemptInline,)
    actions = ("redeliver_selected",)
    change_form_template = "admin/merchants/webhookdelivery/change_form.html"

    def has_redeliver_permission(self, request, obj=None) -> bool:
        # Rows are never edited in a form (ReadOnlyAdminMixin), but whoever holds the change
        # permission may send one again.
        return user_may(request, "change", WebhookDelivery)

    def search_branches(self, request, model, term: str) -> list:
        branches = super().search_branches(request, model, term)
        if ":" not in term:  # a bare refund id
            branches.append(model._default_manager.filter(reference=f"refund:{term}").values("pk").order_by())
        return branches

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj: WebhookDelivery):
        return obj.next_attempt_at if obj.status in WebhookDelivery.DUE else "—"

    @admin.display(description="last error")
    def last_error_short(self, obj: WebhookDelivery) -> str:
        return obj.last_error[:80]

    @admin.display(description="about")
    def reference_link(self, obj: WebhookDelivery):
        kind, _, key = obj.reference.partition(":")
        if kind == "refund" and key:
            try:
                return format_html('<a href="{}">{}</a>', reverse("admin:refunds_refund_change", args=[key]),
                                   obj.reference)
            except NoReverseMatch:
                pass
        return obj.reference or "—"

    @admin.display(description="body")
    def payload_pretty(self, obj: WebhookDelivery):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<int:object_id>/redeliver/", self.admin_site.admin_view(self.redeliver_view),
                 name="{}_{}_redeliver".format(*info)),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_redeliver": self.has_redeliver_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def redeliver_view(self, request, object_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        delivery = get_object_or_404(WebhookDelivery, pk=object_id)
        if not self.has_redeliver_permission(request, delivery):
            raise PermissionDenied
        self._redeliver(request, [delivery])
        return HttpResponseRedirect(reverse("admin:merchants_webhookdelivery_change", args=[delivery.pk]))

    @admin.action(description="Redeliver selected notifications", permissions=("redeliver",))
    def redeliver_selected(self, request, queryset) -> None:
        self._redeliver(request, list(queryset.select_related("merchant")))

    def _redeliver(self, request, deliveries: list[WebhookDelivery]) -> None:
        by = f"user:{request.user.get_username()}"
        done = 0
        for delivery in deliveries:
            if webhooks.webhook_redeliver(delivery_id=delivery.pk, by=by):
                self.log_change(request, delivery, "Redelivered")
                done += 1
        skipped = len(deliveries) - done
        self.message_user(request, f"{done} notification(s) queued to be sent again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} being sent right now: left alone.", messages.WARNING)
