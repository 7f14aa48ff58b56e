"""Admin for complaints, manual payouts and the configuration history: for looking only.

They change through their services (refunds/complaints.py, refunds/payouts.py) and the screens.
A manual payout's card number is never shown: not the encrypted value, only the mask.
"""

from django.contrib import admin

from merchants.admin import (
    BigTableAdminMixin,
    ExactSearchMixin,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    money_display,
)

from .models import Complaint, ComplaintEvent, ComplaintRefund, ConfigChange, ManualPayout


class ComplaintEventInline(ReadOnlyTabularInline):
    model = ComplaintEvent
    fields = ("created_at", "kind", "actor", "body", "data")
    readonly_fields = fields


class ComplaintRefundInline(ReadOnlyTabularInline):
    model = ComplaintRefund
    fields = ("refund", "created_at")
    readonly_fields = fields
    verbose_name_plural = "refunds started from this complaint"


@admin.register(Complaint)
class ComplaintAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "merchant", "category", "status", "assignee", "due_at")
    list_filter = ("status", "category")
    list_select_related = ("merchant", "assignee")
    search_fields = ("id", "payment__out_trade_no", "refund__out_refund_no")
    search_help_text = "Exact complaint id, out_trade_no or out_refund_no."
    fields = (
        "merchant", "payment", "refund", "customer_contact", "category", "description", "status", "assignee", "due_at",
        "outcome", "opened_by", "created_at", "updated_at", "finished_at",
    )
    readonly_fields = fields
    inlines = (ComplaintRefundInline, ComplaintEventInline)


@admin.register(ManualPayout)
class ManualPayoutAdmin(BigTableAdminMixin, ExactSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "recorded_at", "leg", "amount_display", "card_mask", "account_type", "status", "recorded_by", "approved_by",
        "transfer_reference",
    )
    list_filter = ("status", "account_type")
    list_select_related = ("leg", "recorded_by", "approved_by")
    search_fields = ("id", "transfer_reference", "leg__id", "refund__out_refund_no")
    search_help_text = "Exact payout id, transfer reference, leg id or out_refund_no."
    # Listed explicitly so that the encrypted number never appears, not even as a token.
    fields = (
        "leg", "refund", "amount_display", "holder_name", "card_mask", "bank_name", "account_type", "phone", "status",
        "recorded_by", "recorded_at", "approved_by", "approved_at", "transfer_reference", "returned_reason",
        "created_at", "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="card number")
    def card_mask(self, obj: ManualPayout) -> str:
        return obj.card_mask

    @admin.display(description="amount")
    def amount_display(self, obj: ManualPayout) -> str:
        return money_display(obj.amount, obj.currency)


@admin.register(ConfigChange)
class ConfigChangeAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("changed_at", "actor", "model", "object_repr", "action", "changed_fields_display", "note")
    list_filter = ("model", "action")
    search_fields = ("=object_id", "=actor")
    fields = ("changed_at", "actor", "changed_by", "model", "object_id", "object_repr", "action", "before", "after", "note")
    readonly_fields = fields

    @admin.display(description="changed")
    def changed_fields_display(self, obj: ConfigChange) -> str:
        return ", ".join(obj.changed_fields)
