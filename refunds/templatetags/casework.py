"""Template helpers of the complaint and payout screens: their status chips."""

from django import template
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

register = template.Library()

# The same tones as refund statuses (backoffice.STATUS_TONES), for what each state means.
_CHIPS = {
    "open": ("pending", _("Open")),
    "assigned": ("approved", _("Assigned")),
    "resolved": ("succeeded", _("Resolved")),
    "closed": ("closed", _("Closed")),
    "awaiting_card": ("manual", _("Waiting for card")),
    "awaiting_approval": ("processing", _("Waiting for finance")),
    "returned": ("failed", _("Sent back")),
    "paid": ("succeeded", _("Paid")),
    "failure_unconfirmed": ("failed", _("Failure not confirmed")),
}


@register.simple_tag
def case_chip(state):
    tone, label = _CHIPS.get(state, ("pending", state))
    return format_html('<span class="chip chip-{}" data-status="{}">{}</span>', tone, state, label)
