"""Admin for payments and refunds: for looking, and for review through actions that call services.

Nothing here edits a payment or a refund in a form. A refund's status changes only through a
transition inside a service (refund_approve, refund_reject, ...), which also writes the ledger
and the timeline; the detail pages are read-only and have no add or delete.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from merchants.admin import (
    BigTableAdminMixin,
    ExactSearchMixin,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    distinct_values,
    money_display,
)
from merchants.models import LedgerEntry

from . import errors, services
from .models import Payment, PaymentPart, Refund, RefundEvent, RefundLeg

# ---------------------------------------------------------------------------------------------
# Payments


class PaymentPartInline(ReadOnlyTabularInline):
    model = PaymentPart
    fields = ("position", "kind", "channel", "amount_display", "refunded_display", "channel_txn_id", "coupon_id")
    readonly_fields = fields
    verbose_name_plural = "parts"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment", "channel")

    @admin.display(description="amount")
    def amount_display(self, obj: PaymentPart) -> str:
        return money_display(obj.amount, obj.payment.currency)

    @admin.display(description="refunded")
    def refunded_display(self, obj: PaymentPart) -> str:
        return money_display(obj.refunded_amount, obj.payment.currency)


class PaymentRefundInline(ReadOnlyTabularInline):
    model = Refund
    fields = ("refund_link", "amount_display", "status", "direction", "source", "created_by", "created_at")
    readonly_fields = fields
    verbose_name_plural = "refunds"

    @admin.display(description="out_refund_no")
    def refund_link(self, obj: Refund):
        return format_html('<a href="{}">{}</a>', reverse("admin:refunds_refund_change", args=[obj.pk]), obj.out_refund_no)

    @admin.display(description="amount")
    def amount_display(self, obj: Refund) -> str:
        return money_display(obj.amount, obj.currency)


class PaymentCurrencyFilter(admin.SimpleListFilter):
    """The payments' currencies, found through the payment_currency_paid index (the stock
    AllValuesFieldListFilter reads the whole table with SELECT DISTINCT on every page)."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        return [(c, c) for c in distinct_values(Payment, "currency")]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


@admin.register(Payment)
class PaymentAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "paid_at", "merchant_code", "out_trade_no", "amount_display", "refunded_display", "user_id",
        "record_version", "expires_at",
    )
    list_filter = ("record_version", PaymentCurrencyFilter, "auto_refund_on_expiry")
    list_select_related = ("merchant",)
    search_fields = ("out_trade_no", "user_id", "id")
    search_help_text = "Exact out_trade_no, user id or payment id."
    sortable_by = ("paid_at", "out_trade_no", "user_id")  # indexed: any other order sorts the whole table
    fieldsets = (
        (None, {"fields": ("merchant", "out_trade_no", "user_id", "paid_at", "record_version", "legacy_amount_yuan")}),
        ("Amounts", {"fields": ("amount_display", "refunded_display", "refundable_display", "settlement_display")}),
        ("Voucher", {"fields": ("expires_at", "auto_refund_on_expiry")}),
        ("Record", {"fields": ("created_at",)}),
    )
    readonly_fields = (
        "merchant", "out_trade_no", "user_id", "paid_at", "record_version", "legacy_amount_yuan", "amount_display",
        "refunded_display", "refundable_display", "settlement_display", "expires_at", "auto_refund_on_expiry",
        "created_at",
    )
    inlines = (PaymentPartInline, PaymentRefundInline)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("merchant")

    @admin.display(description="merchant", ordering="merchant__code")
    def merchant_code(self, obj: Payment) -> str:
        return obj.merchant.code

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Payment) -> str:
        return money_display(obj.amount, obj.currency)

    @admin.display(description="refunded")
    def refunded_display(self, obj: Payment) -> str:
        return money_display(obj.refunded_amount, obj.currency)

    @admin.display(description="refundable")
    def refundable_display(self, obj: Payment) -> str:
        return money_display(obj.refundable_amount, obj.currency)

    @admin.display(description="settled")
    def settlement_display(self, obj: Payment) -> str:
        return money_display(obj.settlement_amount, obj.settlement_currency)


# ---------------------------------------------------------------------------------------------
# Refunds


class RefundLegInline(ReadOnlyTabularInline):
    model = RefundLeg
    fields = (
        "route", "channel", "payment_part", "amount_display", "hold_display", "status", "channel_refund_id",
        "failure_reason", "fallback_reason", "created_at", "completed_at",
    )
    readonly_fields = fields
    verbose_name_plural = "legs"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("refund", "channel", "payment_part")

    @admin.display(description="amount")
    def amount_display(self, obj: RefundLeg) -> str:
        return money_display(obj.amount, obj.currency)

    @admin.display(description="hold")
    def hold_display(self, obj: RefundLeg) -> str:
        return money_display(obj.hold_amount, obj.refund.hold_currency)


class RefundEventInline(ReadOnlyTabularInline):
    model = RefundEvent
    fields = ("created_at", "kind", "leg", "from_status", "to_status", "actor", "reason", "data")
    readonly_fields = fields
    verbose_name = "event"
    verbose_name_plural = "timeline (transitions and decisions)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("leg")


@admin.register(Refund)
class RefundAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at", "merchant", "out_refund_no", "out_trade_no", "amount_display", "status", "source", "direction",
    )
    list_display_links = ("created_at", "out_refund_no")
    list_filter = ("status", "source", "direction")
    list_select_related = ("merchant", "payment")
    search_fields = ("out_refund_no", "payment__out_trade_no", "id", "payment__user_id")
    search_help_text = "Exact out_refund_no, out_trade_no, refund id or user id."
    sortable_by = ("created_at", "out_refund_no")  # indexed: any other order sorts the whole table
    actions = ("approve_selected", "reject_selected")
    inlines = (RefundLegInline, RefundEventInline)
    fieldsets = (
        (None, {"fields": (
            "id", "merchant", "payment_link", "out_refund_no", "amount_display", "status", "failure_reason",
            "estimated_arrival", "completed_at",
        )}),
        ("Request", {"fields": (
            "direction", "source", "reason", "notify_url", "created_by", "created_by_user", "created_at", "updated_at",
        )}),
        ("Money", {"fields": ("breakdown_display", "hold_display", "hold_account_kind", "allocation", "ledger_entries")}),
        ("Risk", {"fields": ("risk_outcome", "risk_reasons")}),
    )
    readonly_fields = (
        "id", "merchant", "payment_link", "out_refund_no", "amount_display", "status", "failure_reason",
        "estimated_arrival", "completed_at", "direction", "source", "reason", "notify_url", "created_by",
        "created_by_user", "created_at", "updated_at", "breakdown_display", "hold_display", "hold_account_kind",
        "allocation", "ledger_entries", "risk_outcome", "risk_reasons",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("merchant", "payment")

    # -- review: actions that call the services, refused per refund with the service's reason

    def has_review_permission(self, request) -> bool:
        # The role matrix's action permission (refunds/roles.py), not "change refund": the
        # detail page stays read-only for everyone, reviewers included.
        return request.user.has_perm("refunds.review_refund")

    @admin.action(description="Approve selected", permissions=("review",))
    def approve_selected(self, request, queryset: QuerySet[Refund]) -> None:
        by = f"user:{request.user.get_username()}"
        self._review(
            request, queryset, done="approved",
            call=lambda refund: services.refund_approve(
                refund_id=refund.pk, by=by, user=request.user, reason="approved in admin"
            ),
        )

    @admin.action(description="Reject selected", permissions=("review",))
    def reject_selected(self, request, queryset: QuerySet[Refund]) -> None:
        username = request.user.get_username()
        self._review(
            request, queryset, done="rejected",
            call=lambda refund: services.refund_reject(
                refund_id=refund.pk, by=f"user:{username}", user=request.user, reason=f"rejected in admin by {username}"
            ),
        )

    def _review(self, request, queryset: QuerySet[Refund], *, done: str, call) -> None:
        succeeded = 0
        # Each service call is its own transaction: one refused refund does not undo the others.
        for refund in queryset.select_related("merchant").order_by("created_at"):
            try:
                call(refund)
            except errors.RefundError as refused:
                self.message_user(request, f"{refund}: not {done}: {refused.message}", messages.ERROR)
            except (TransitionNotAllowed, ConcurrentTransition) as raced:
                self.message_user(request, f"{refund}: not {done}: changed meanwhile ({raced})", messages.ERROR)
            else:
                succeeded += 1
                self.log_change(request, refund, f"{done.capitalize()} in admin")
        if succeeded:
            self.message_user(request, f"{succeeded} refund(s) {done}.", messages.SUCCESS)

    # -- read-only displays

    @admin.display(description="out_trade_no", ordering="payment__out_trade_no")
    def out_trade_no(self, obj: Refund) -> str:
        return obj.payment.out_trade_no

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return money_display(obj.amount, obj.currency)

    @admin.display(description="payment")
    def payment_link(self, obj: Refund):
        url = reverse("admin:refunds_payment_change", args=[obj.payment_id])
        return format_html('<a href="{}">{}</a> (refundable {})', url, obj.payment.out_trade_no,
                           money_display(obj.payment.refundable_amount, obj.payment.currency))

    @admin.display(description="hold")
    def hold_display(self, obj: Refund) -> str:
        return money_display(obj.hold_amount, obj.hold_currency)

    @admin.display(description="breakdown")
    def breakdown_display(self, obj: Refund) -> str:
        parts = services.breakdown(obj, list(obj.legs.all()))
        return ", ".join(f"{key}: {money_display(value, obj.currency)}" for key, value in parts.items()) or "—"

    @admin.display(description="ledger entries")
    def ledger_entries(self, obj: Refund):
        # The ledger lives in merchants and knows refunds only by this reference.
        entries = list(
            LedgerEntry.objects.filter(transaction__reference=f"refund:{obj.pk}")
            .select_related("transaction", "account__merchant")
            .order_by("transaction_id", "id")
        )
        if not entries:
            return "—"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td style="text-align:right">{}</td>'
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:merchants_ledgertransaction_change", args=[e.transaction_id]), e.transaction_id,
                    e.transaction.get_kind_display(), e.account, f"{e.amount:+d}", e.currency,
                    money_display(e.amount, e.currency),
                )
                for e in entries
            ),
        )
        return format_html(
            "<table><thead><tr><th>transaction</th><th>kind</th><th>account</th><th>amount</th><th>currency</th>"
            "<th>formatted</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

from . import admin_casework  # noqa: E402, F401  (complaints, manual payouts, configuration history)
