"""Channel configuration: operations edit it here (refund window, limits, hours, ETA)."""

from django import forms
from django.contrib import admin

from .models import Channel


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = (
            "code", "name", "adapter", "enabled", "refund_window_days", "max_refunds_per_payment", "dedupes_by_refund_no",
            "processing_start", "processing_end", "rate_limit_per_minute", "typical_days_to_arrive", "note",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Every change gives its own reason (kept in the configuration history), not the last one's.
            last = self.instance.note
            self.initial["note"] = ""
            self.fields["note"].required = True
            self.fields["note"].help_text = f"Why this change. Last time: {last}" if last else "Why this change."

    def clean(self):
        data = super().clean()
        if (data.get("processing_start") is None) != (data.get("processing_end") is None):
            raise forms.ValidationError("Set both processing hours, or neither for a channel open all day.")
        return data


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = (
        "code", "name", "adapter", "enabled", "refund_window_days", "max_refunds_per_payment",
        "dedupes_by_refund_no", "hours", "rate_limit_per_minute", "typical_days_to_arrive",
    )
    list_filter = ("enabled", "adapter", "dedupes_by_refund_no")
    search_fields = ("code", "name")
    readonly_fields = ("updated_at",)
    fieldsets = (
        (None, {"fields": ("code", "name", "adapter", "enabled")}),
        ("Refund rules", {"fields": ("refund_window_days", "max_refunds_per_payment", "dedupes_by_refund_no")}),
        ("Processing", {"fields": ("processing_start", "processing_end", "rate_limit_per_minute", "typical_days_to_arrive")}),
        ("Change", {"fields": ("note", "updated_at")}),
    )

    def has_delete_permission(self, request, obj=None):
        return False  # payment parts and legs point at it: disable it instead

    def save_model(self, request, obj: Channel, form, change: bool) -> None:
        # refunds/config_audit.py records the save with these (channels may not import refunds).
        obj._config_user, obj._config_note = request.user, obj.note
        super().save_model(request, obj, form, change)

    @admin.display(description="hours")
    def hours(self, obj: Channel) -> str:
        if obj.processing_start is None:
            return "all day"
        return f"{obj.processing_start:%H:%M}–{obj.processing_end:%H:%M}"
