"""Input and output shapes of the merchant API (API.md).

Inputs are strict: JSON types are not coerced ("3000" is not an amount, "true" is not a
boolean), unknown fields are refused, strings are valid Unicode without NUL, so that every
malformed body is a 400 naming the field and never reaches the database. Outputs are
rendered by refunds.selectors (`refund_as_dict`, `payment_as_dict`); the output serializers
here only describe them for the OpenAPI schema.
"""

import datetime
import re
from collections.abc import Mapping

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from refunds.models import PaymentPart, Refund, RefundLeg

from .exceptions import INVALID_AMOUNT

# Amounts are stored in 64-bit integer columns.
MAX_MINOR_UNITS = 2**63 - 1
MAX_PAGE = 100
DEFAULT_PAGE = 20

# Merchant-chosen identifiers: WeChat Pay's alphabet, so they also fit in a URL path segment.
ID_PATTERN = r"^[A-Za-z0-9_\-|*@.:]+$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# What notify_url accepts, also as the schema's pattern: every match is a valid RFC 3986 URI.
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_URI_CHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})"
HTTP_URL = (
    rf"https?://{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?"
    rf"(?:/{_URI_CHAR}*)?(?:\?(?:{_URI_CHAR}|\?)*)?"
)
HTTP_URL_RE = re.compile(HTTP_URL)
# RFC 3339, as JSON Schema's date-time: a date, "T", a time with seconds, and an offset.
DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$"
)


# ---------------------------------------------------------------------------------------------
# Strict fields


class StrictCharField(serializers.CharField):
    """A JSON string, taken as sent (no trimming), valid Unicode, no NUL (DRF adds that check)."""

    default_error_messages = {"invalid": "must be a string", "unicode": "must be valid Unicode text"}

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        if not kwargs.get("allow_blank"):
            kwargs.setdefault("min_length", 1)  # says "not blank" in the schema too
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no database would store it
            self.fail("unicode")
        return data


class IdentifierField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault(
            "validators", [RegexValidator(ID_PATTERN, "may contain only letters, digits and _-|*@.:")]
        )
        super().__init__(**kwargs)


class CurrencyField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.update(min_length=3, max_length=3)
        kwargs.setdefault("validators", [RegexValidator(CURRENCY_PATTERN, "must be an ISO 4217 code such as CNY")])
        kwargs.setdefault("help_text", "ISO 4217, upper case.")
        super().__init__(**kwargs)


class MinorUnitsField(serializers.IntegerField):
    """An amount: a JSON integer of minor units. Out of range is 422 INVALID_AMOUNT (API.md)."""

    default_error_messages = {
        "invalid": "must be an integer of minor units",
        "range": "must be between {minimum} and {maximum} minor units",
    }

    def __init__(self, *, minimum: int = 1, **kwargs):
        self.minimum = minimum
        kwargs.update(min_value=minimum, max_value=MAX_MINOR_UNITS)
        kwargs.setdefault("help_text", "Integer of minor units (fen, cents).")
        super().__init__(**kwargs)
        self.validators = []  # the range is checked below, with its own error code

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        if not self.minimum <= data <= MAX_MINOR_UNITS:
            raise serializers.ValidationError(
                self.error_messages["range"].format(minimum=self.minimum, maximum=MAX_MINOR_UNITS), code=INVALID_AMOUNT
            )
        return data


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "must be true or false"}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field(OpenApiTypes.DATETIME)
class Rfc3339DateTimeField(serializers.DateTimeField):
    """ISO 8601 / RFC 3339 with its UTC offset: `2026-11-20T10:00:00+08:00`. No naive times."""

    default_error_messages = {"invalid": "must be a date and time with offset, e.g. 2026-11-20T10:00:00+08:00"}

    def to_internal_value(self, value):
        if not isinstance(value, str) or not DATETIME_RE.match(value):
            self.fail("invalid")
        try:
            parsed = datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
            # Normalised to the business time zone, so that the same instant given with
            # another offset is the same request (payment replays compare a fingerprint).
            return timezone.localtime(parsed)
        except (ValueError, OverflowError):
            self.fail("invalid")


@extend_schema_field({"type": "string", "format": "uri", "pattern": f"^{HTTP_URL}$", "maxLength": 500,
                     "example": "https://merchant.example/refund-hook"})
class HttpUrlField(StrictCharField):
    """An http(s) URL of a host name (no credentials, no fragment); what it matches is a valid URI."""

    default_error_messages = {"url": "must be an http:// or https:// URL, e.g. https://merchant.example/hook"}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 500)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not HTTP_URL_RE.fullmatch(data):
            self.fail("url")
        return data


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo must not be silently ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in self.fields)
            if unknown:
                raise serializers.ValidationError({unknown[0]: ["unknown field"]})
        return super().to_internal_value(data)


# ---------------------------------------------------------------------------------------------
# Inputs


class PaymentPartRequestSerializer(StrictSerializer):
    """One part of a payment: a channel, the user's platform balance, or a coupon."""

    kind = serializers.ChoiceField(choices=PaymentPart.Kind.choices)
    amount = MinorUnitsField()
    channel = StrictCharField(
        max_length=32, required=False, default="", allow_blank=True, help_text="Channel code, required when kind is channel."
    )
    channel_txn_id = StrictCharField(max_length=64, required=False, default="", allow_blank=True)
    coupon_id = StrictCharField(max_length=64, required=False, default="", allow_blank=True)


class SettlementRequestSerializer(StrictSerializer):
    """What the merchant is credited, when it settles in another currency than the payment's."""

    currency = CurrencyField()
    amount = MinorUnitsField(minimum=0, required=False, help_text="Required when the currency differs from the payment's.")


class PaymentCreateRequestSerializer(StrictSerializer):
    """A completed payment, reported by the payment core. Unknown fields are refused."""

    merchant = StrictCharField(max_length=32, help_text="The merchant's code.")
    out_trade_no = IdentifierField(help_text="The merchant's payment number, unique per merchant.")
    amount = MinorUnitsField()
    currency = CurrencyField(required=False, default="CNY")
    user_id = StrictCharField(max_length=64)
    paid_at = Rfc3339DateTimeField()
    parts = PaymentPartRequestSerializer(many=True, allow_empty=False, max_length=20, help_text="Must add up to amount.")
    settlement = SettlementRequestSerializer(
        required=False, allow_null=True, default=None, help_text="Defaults to the payment's currency and amount."
    )
    expires_at = Rfc3339DateTimeField(required=False, allow_null=True, default=None)
    auto_refund_on_expiry = StrictBooleanField(required=False, default=False)

    def validate(self, attrs):
        if sum(part["amount"] for part in attrs["parts"]) != attrs["amount"]:
            raise serializers.ValidationError({"parts": ["the parts must add up to amount"]})
        return attrs


class RefundCreateRequestSerializer(StrictSerializer):
    """A refund request. Unknown fields are refused."""

    out_trade_no = StrictCharField(max_length=64, help_text="The payment to refund.")
    out_refund_no = IdentifierField(help_text="The merchant's refund number: the idempotency key.")
    amount = MinorUnitsField()
    reason = StrictCharField(max_length=255, required=False, default="", allow_blank=True)
    direction = serializers.ChoiceField(choices=Refund.Direction.choices, required=False, default=Refund.Direction.ORIGINAL)
    source = serializers.ChoiceField(choices=Refund.Source.choices, required=False, default=Refund.Source.MERCHANT)
    notify_url = HttpUrlField(
        required=False, allow_blank=True, allow_null=True, default="",
        help_text="Where to POST the refund's final status; default: the merchant's webhook URL.",
    )

    def validate_notify_url(self, value):
        return value or ""


class StrictQueryIntegerField(serializers.IntegerField):
    """A query string integer: digits only ("20", not "20.0" or " 20")."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data.isascii() or not data.isdigit() or len(data) > 6:
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.UUID)
class StrictUuidField(StrictCharField):
    default_error_messages = {"uuid": "must be a refund id (a UUID)"}

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not UUID_RE.match(data):
            self.fail("uuid")
        return data.lower()


class RefundListQuerySerializer(serializers.Serializer):
    out_refund_no = StrictCharField(
        max_length=64, required=False, help_text="Look one refund up by the merchant's number: answers the refund object."
    )
    out_trade_no = StrictCharField(max_length=64, required=False, help_text="Only the refunds of this payment.")
    limit = StrictQueryIntegerField(
        min_value=1, max_value=MAX_PAGE, required=False, default=DEFAULT_PAGE, help_text="Page size, 1 to 100."
    )
    starting_after = StrictUuidField(
        required=False, help_text="A refund id, usually the previous page's next_cursor: the page starts after it."
    )


# ---------------------------------------------------------------------------------------------
# Outputs (schema only: the views render refunds.selectors' dictionaries)


class RefundLegSerializer(serializers.Serializer):
    route = serializers.CharField(help_text="A channel code, `balance` or `manual`.")
    amount = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RefundLeg.Status.choices)
    channel_refund_id = serializers.CharField(required=False, allow_null=True, help_text="Channel legs only.")
    failure_reason = serializers.CharField(required=False)
    fallback_reason = serializers.CharField(required=False, help_text="Why the part does not go back the original way.")


class RefundSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    out_refund_no = serializers.CharField()
    out_trade_no = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    direction = serializers.ChoiceField(choices=Refund.Direction.choices)
    source = serializers.ChoiceField(choices=Refund.Source.choices)
    reason = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Refund.Status.choices)
    failure_reason = serializers.CharField(allow_null=True)
    estimated_arrival = serializers.DateField(allow_null=True)
    breakdown = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Where the amount goes: `channel`, `balance`, `manual`, `coupon_not_returned`.",
    )
    legs = RefundLegSerializer(many=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class RefundListSerializer(serializers.Serializer):
    data = RefundSerializer(many=True, help_text="Newest first.")
    has_more = serializers.BooleanField()
    next_cursor = serializers.UUIDField(
        allow_null=True, help_text="Pass as starting_after for the next page; null on the last page."
    )


class PaymentPartSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PaymentPart.Kind.choices)
    amount = serializers.IntegerField()
    channel = serializers.CharField(allow_null=True)
    channel_txn_id = serializers.CharField(allow_null=True)
    coupon_id = serializers.CharField(allow_null=True)
    refunded_amount = serializers.IntegerField()
    refundable_amount = serializers.IntegerField()


class SettlementSerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount = serializers.IntegerField()


class PaymentSerializer(serializers.Serializer):
    merchant = serializers.CharField()
    out_trade_no = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    user_id = serializers.CharField()
    paid_at = serializers.DateTimeField()
    parts = PaymentPartSerializer(many=True)
    settlement = SettlementSerializer()
    expires_at = serializers.DateTimeField(allow_null=True)
    auto_refund_on_expiry = serializers.BooleanField()
    refunded_amount = serializers.IntegerField()
    refundable_amount = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="UPPER_SNAKE; see each operation's responses.")
    message = serializers.CharField()
    param = serializers.CharField(required=False, help_text="The field the error is about, e.g. parts[0].amount.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
